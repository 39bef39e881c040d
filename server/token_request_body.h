// How a token request's parameters go on the wire: the three encodings
// Treezor accepts, chosen per tenant by `requestEncoding`:
//   form (default)  application/x-www-form-urlencoded, as RFC 6749 specifies
//   multipart       multipart/form-data, as Treezor's curl examples send
//   json            application/json, as Treezor's JS example posts
//
//   absl::StatusOr<EncodedBody> body = EncodeBody(curl, tenant, params);
//   // body->mime for multipart, else body->data; body->headers either way.
//
// The body carries the secrets, so no buffer of it outlives its use
// unwiped: the form and JSON bodies are Secrets, built without intermediate
// copies (curl_easy_escape's results are wiped before curl_free; JSON is
// written by the project's JSON string writer into a buffer reserved large
// enough never to reallocate, then wiped). Multipart parts are not given to
// curl_mime_data, which copies them into memory nothing wipes (and libcurl
// copies them again for CURLOPT_MIMEPOST): each part's bytes stay in a
// Secret the body owns (MimePartSource) and libcurl reads them through
// curl_mime_data_cb. Out of reach: the copies libcurl and OpenSSL make
// while sending (socket and TLS record buffers).
//
// Thread-safety: EncodeBody uses `curl` (multipart parts are bound to it), so
// one thread at a time per handle, as libcurl requires.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_REQUEST_BODY_H_
#define TREEZOR_BROKER_SERVER_TOKEN_REQUEST_BODY_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/curl_handle.h"
#include "server/secret.h"
#include "server/token_request.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

namespace internal {
// One multipart part's bytes, read by libcurl through a callback.
struct MimePartSource {
  Secret bytes;
  size_t position = 0;
};
}  // namespace internal

struct EncodedBody {
  Secret data;  // form and json
  // Multipart: the parts' bytes (heap-allocated: libcurl keeps pointers to
  // them), declared before `mime` so the mime goes first.
  std::vector<std::unique_ptr<internal::MimePartSource>> parts;
  internal::CurlMime mime;
  // Content-Type (except for multipart, which curl sets with its boundary),
  // Accept, and an empty Expect (no 100-continue round trip for a body of a
  // few hundred bytes).
  internal::CurlSlist headers;
};

// FAILED_PRECONDITION "tenant <name>: unsupported requestEncoding ..." for an
// unknown encoding; INTERNAL when libcurl cannot build the body.
absl::StatusOr<EncodedBody> EncodeBody(CURL* curl, const v1::Tenant& tenant,
                                       const Params& params);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_REQUEST_BODY_H_
