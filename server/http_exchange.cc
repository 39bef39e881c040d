#include "server/http_exchange.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/token_request_body.h"

namespace treezor::broker {
namespace {

constexpr absl::string_view kTokenPath = "/oauth/token";
constexpr char kUserAgent[] = "treezor-token-broker";

// libcurl's progress callback: a non-zero answer aborts the transfer
// (CURLE_ABORTED_BY_CALLBACK). Called at least once a second while idle.
int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* exchange = static_cast<const HttpExchange*>(user);
  return exchange->cancelled != nullptr && exchange->cancelled->load() ? 1 : 0;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<HttpExchange*>(user);
  const size_t bytes = size * count;
  if (exchange->body.size() + bytes > kMaxResponseBytes) {
    exchange->body_too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  exchange->body.append(data, bytes);
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<HttpExchange*>(user);
  const absl::string_view line(data, size * count);
  if (absl::StartsWith(line, "HTTP/")) {
    exchange->retry_after.clear();  // a new (final or interim) response
  } else if (absl::StartsWithIgnoreCase(line, "retry-after:")) {
    exchange->retry_after = std::string(absl::StripAsciiWhitespace(
        line.substr(std::strlen("retry-after:"))));
  }
  return size * count;
}

long Millis(absl::Duration d) {
  return static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

// Sets every option of one request on a freshly reset handle. False only when
// libcurl is out of memory or lacks an option.
bool SetOptions(CURL* curl, const v1::Tenant& tenant,
                const UpstreamSettings& settings,
                const std::string& url, const EncodedBody& body,
                HttpExchange* exchange) {
  bool ok = true;
  auto check = [&ok](CURLcode rc) { ok = ok && rc == CURLE_OK; };
  check(curl_easy_setopt(curl, CURLOPT_URL, url.c_str()));
  check(curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https"));
  check(curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L));
  check(curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L));
  check(curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L));
  check(curl_easy_setopt(curl, CURLOPT_USERAGENT, kUserAgent));
  check(curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                         Millis(settings.connect_timeout)));
  check(curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                         Millis(settings.request_timeout)));

  const v1::UpstreamTls& tls = tenant.upstream_tls();
  check(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L));
  check(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L));
  // No TLS session resumption: every new connection is a full handshake, so
  // the current client certificate is always presented (a rotated one takes
  // effect at once) and servers that mishandle resumption with client
  // certificates (cpp-httplib answers "internal error") are no problem.
  // Token requests are rare; the saved round trip is not worth it.
  check(curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L));
  if (!tls.cert_file().empty()) {
    check(curl_easy_setopt(curl, CURLOPT_SSLCERT, tls.cert_file().c_str()));
    check(curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM"));
  }
  if (!tls.key_file().empty()) {
    check(curl_easy_setopt(curl, CURLOPT_SSLKEY, tls.key_file().c_str()));
    check(curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM"));
  }
  if (!tls.ca_file().empty()) {
    check(curl_easy_setopt(curl, CURLOPT_CAINFO, tls.ca_file().c_str()));
  }

  if (body.mime != nullptr) {
    check(curl_easy_setopt(curl, CURLOPT_MIMEPOST, body.mime.get()));
  } else {
    check(curl_easy_setopt(curl, CURLOPT_POST, 1L));
    // CURLOPT_POSTFIELDS does not copy: the body stays in its Secret.
    check(curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                           static_cast<curl_off_t>(body.data.view().size())));
    check(curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data.view().data()));
  }
  check(curl_easy_setopt(curl, CURLOPT_HTTPHEADER, body.headers.get()));

  check(curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, exchange->error_buffer));
  check(curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody));
  check(curl_easy_setopt(curl, CURLOPT_WRITEDATA, exchange));
  check(curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader));
  check(curl_easy_setopt(curl, CURLOPT_HEADERDATA, exchange));
  check(curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L));
  check(curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &OnProgress));
  check(curl_easy_setopt(curl, CURLOPT_XFERINFODATA, exchange));
  return ok;
}

std::string TokenUrl(const v1::Tenant& tenant) {
  return absl::StrCat(absl::StripSuffix(tenant.base_url(), "/"), kTokenPath);
}

}  // namespace

absl::Status Perform(CURL* curl, const v1::Tenant& tenant,
                     const UpstreamSettings& settings, const Params& params,
                     HttpExchange* exchange) {
  // Forget the previous request's options, keep its live connections.
  curl_easy_reset(curl);
  absl::StatusOr<EncodedBody> body = EncodeBody(curl, tenant, params);
  if (!body.ok()) return body.status();
  if (!SetOptions(curl, tenant, settings, TokenUrl(tenant), *body, exchange)) {
    return TenantError(absl::StatusCode::kInternal, tenant.name(),
                       "cannot configure the HTTP request");
  }
  exchange->code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &exchange->http_status);
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &exchange->new_connections);
  curl_off_t tls_done_us = 0;
  curl_easy_getinfo(curl, CURLINFO_APPCONNECT_TIME_T, &tls_done_us);
  exchange->tls_handshake_done = tls_done_us > 0;
  curl_easy_getinfo(curl, CURLINFO_HEADER_SIZE,
                    &exchange->response_header_bytes);
  return absl::OkStatus();
}

}  // namespace treezor::broker
