// One POST of a token request to a tenant's `/oauth/token` over mutual TLS,
// on a (pooled) libcurl handle, and what came back — raw, not yet
// interpreted (the Treezor client classifies it).
//
//   HttpExchange exchange;
//   exchange.cancelled = &shutting_down;
//   absl::Status built = Perform(curl, tenant, settings, params, &exchange);
//   // built: the request could be sent at all; exchange.code / http_status /
//   // body: what happened.
//
// Decisions worth knowing:
//  - https only, no redirects, no TLS session resumption (every new
//    connection presents the client certificate on disk now).
//  - The certificate and key files are loaded when a new connection is made,
//    so rotated client certificates take effect on the next new connection.
//  - Answers larger than kMaxResponseBytes abort the transfer.
//  - `cancelled` is polled about once a second (libcurl's progress
//    callback): setting it aborts the transfer.
//
// Thread-safety: one exchange per handle at a time, as libcurl requires.
#ifndef TREEZOR_BROKER_SERVER_HTTP_EXCHANGE_H_
#define TREEZOR_BROKER_SERVER_HTTP_EXCHANGE_H_

#include <curl/curl.h>

#include <atomic>
#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "server/settings.h"
#include "server/token_request.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// A token answer is a few KiB; anything much larger is not one.
inline constexpr size_t kMaxResponseBytes = 64 * 1024;

struct HttpExchange {
  CURLcode code = CURLE_OK;
  char error_buffer[CURL_ERROR_SIZE] = {};
  long http_status = 0;
  std::string body;
  bool body_too_large = false;
  // Retry-After of the final response, raw.
  std::string retry_after;
  long new_connections = 0;
  bool tls_handshake_done = false;
  long response_header_bytes = 0;
  // Set at shutdown: the transfer is aborted.
  const std::atomic<bool>* cancelled = nullptr;
};

// Runs one POST of `params` (encoded as the tenant's requestEncoding) on
// `curl`. Fails only if the request could not be built (TenantError);
// transfer failures are recorded in `exchange`.
absl::Status Perform(CURL* curl, const v1::Tenant& tenant,
                     const UpstreamSettings& settings, const Params& params,
                     HttpExchange* exchange);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_HTTP_EXCHANGE_H_
