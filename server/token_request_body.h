// How a token request's parameters go on the wire: the three encodings
// Treezor accepts, chosen per tenant by `requestEncoding`:
//   form (default)  application/x-www-form-urlencoded, as RFC 6749 specifies
//   multipart       multipart/form-data, as Treezor's curl examples send
//   json            application/json, as Treezor's JS example posts
//
//   absl::StatusOr<EncodedBody> body = EncodeBody(curl, tenant, params);
//   // body->mime for multipart, else body->data; body->headers either way.
//
// Thread-safety: EncodeBody uses `curl` (multipart parts are bound to it), so
// one thread at a time per handle, as libcurl requires.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_REQUEST_BODY_H_
#define TREEZOR_BROKER_SERVER_TOKEN_REQUEST_BODY_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/curl_handle.h"
#include "server/token_request.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

struct EncodedBody {
  std::string data;         // form and json
  internal::CurlMime mime;  // multipart
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
