#include "server/treezor_oauth_client.h"

#include <curl/curl.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/token_digest.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/logging.h"
#include "server/oauth_response.h"
#include "server/secret_reader.h"

namespace treezor::broker {
namespace {

// ---------------------------------------------------------------------------
// libcurl ownership.

struct CurlEasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct CurlMimeDeleter {
  void operator()(curl_mime* mime) const { curl_mime_free(mime); }
};
using CurlMime = std::unique_ptr<curl_mime, CurlMimeDeleter>;

struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

void InitCurlOnce() {
  // Thread-safe by C++ static initialisation; never cleaned up (the process
  // may still have handles in flight at exit).
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)init;  // a failure shows up as curl_easy_init returning null
}

// A token answer is a few KiB; anything much larger is not one.
constexpr size_t kMaxResponseBytes = 64 * 1024;
constexpr absl::string_view kTokenPath = "/oauth/token";
constexpr char kUserAgent[] = "treezor-token-broker";

// ---------------------------------------------------------------------------
// What to send.

enum class Grant { kClientCredentials, kPassword, kRefreshToken };

absl::string_view GrantName(Grant grant) {
  switch (grant) {
    case Grant::kClientCredentials:
      return "client_credentials";
    case Grant::kPassword:
      return "password";
    case Grant::kRefreshToken:
      return "refresh_token";
  }
  return "unknown";
}

using Params = std::vector<std::pair<std::string, std::string>>;

struct TokenRequest {
  Grant grant = Grant::kClientCredentials;
  Params params;
  // Values that must never appear in a message, even if Treezor echoes them.
  std::vector<Secret> secrets;
};

absl::Status TenantError(absl::StatusCode code, absl::string_view tenant,
                         absl::string_view what) {
  return absl::Status(code, absl::StrCat("tenant ", tenant, ": ", what));
}

// A secret the tenant's configuration names, read now (so that a rotated one
// is used at once) by the reader config validation uses too.
absl::StatusOr<Secret> InTenant(const v1::Tenant& tenant,
                                absl::StatusOr<Secret> secret) {
  if (!secret.ok()) {
    return TenantError(secret.status().code(), tenant.name(),
                       secret.status().message());
  }
  return secret;
}

absl::StatusOr<Grant> ChooseGrant(const v1::Tenant& tenant,
                                  const FetchRequest& request) {
  if (!request.refresh_token.empty()) return Grant::kRefreshToken;
  if (tenant.grant_type().empty() ||
      tenant.grant_type() == "client_credentials") {
    return Grant::kClientCredentials;
  }
  if (tenant.grant_type() == "password") return Grant::kPassword;
  return TenantError(absl::StatusCode::kFailedPrecondition, tenant.name(),
                     absl::StrCat("unsupported grantType \"",
                                  tenant.grant_type(), "\""));
}

absl::StatusOr<TokenRequest> BuildTokenRequest(const v1::Tenant& tenant,
                                               const FetchRequest& request) {
  absl::StatusOr<Grant> grant = ChooseGrant(tenant, request);
  if (!grant.ok()) return grant.status();
  TokenRequest out;
  out.grant = *grant;
  out.params.emplace_back("grant_type", GrantName(*grant));
  out.params.emplace_back("client_id", tenant.client_id());
  if (*grant == Grant::kRefreshToken) {
    out.params.emplace_back("refresh_token", request.refresh_token);
    out.secrets.emplace_back(request.refresh_token);
  } else {
    absl::StatusOr<Secret> secret = InTenant(tenant, ReadClientSecret(tenant));
    if (!secret.ok()) return secret.status();
    out.params.emplace_back("client_secret", std::string(secret->view()));
    out.secrets.push_back(*std::move(secret));
  }
  if (*grant == Grant::kPassword) {
    absl::StatusOr<Secret> username = InTenant(
        tenant, ReadSecretFile("usernameFile", tenant.username_file()));
    if (!username.ok()) return username.status();
    absl::StatusOr<Secret> password = InTenant(
        tenant, ReadSecretFile("passwordFile", tenant.password_file()));
    if (!password.ok()) return password.status();
    out.params.emplace_back("username", std::string(username->view()));
    out.params.emplace_back("password", std::string(password->view()));
    out.secrets.push_back(*std::move(password));
  }
  if (!request.scopes.empty()) {
    out.params.emplace_back("scope", request.scopes.ToOAuthString());
  }
  return out;
}

// ---------------------------------------------------------------------------
// How to send it: the three encodings Treezor accepts.

struct EncodedBody {
  std::string data;  // form and json
  CurlMime mime;     // multipart
  CurlSlist headers;
};

void AppendHeader(CurlSlist& list, const char* header) {
  // curl_slist_append returns null (leaving the list intact) on failure.
  if (curl_slist* head = curl_slist_append(list.get(), header)) {
    list.release();
    list.reset(head);
  }
}

absl::Status EncodeForm(CURL* curl, const Params& params, EncodedBody* out) {
  std::vector<std::string> pairs;
  for (const auto& [key, value] : params) {
    CurlString k(curl_easy_escape(curl, key.data(), static_cast<int>(key.size())));
    CurlString v(
        curl_easy_escape(curl, value.data(), static_cast<int>(value.size())));
    if (k == nullptr || v == nullptr) {
      return absl::InternalError("cannot form-encode the request");
    }
    pairs.push_back(absl::StrCat(k.get(), "=", v.get()));
  }
  out->data = absl::StrJoin(pairs, "&");
  AppendHeader(out->headers,
               "Content-Type: application/x-www-form-urlencoded");
  return absl::OkStatus();
}

absl::Status EncodeMultipart(CURL* curl, const Params& params,
                             EncodedBody* out) {
  out->mime.reset(curl_mime_init(curl));
  if (out->mime == nullptr) {
    return absl::InternalError("cannot build the multipart request");
  }
  for (const auto& [key, value] : params) {
    curl_mimepart* part = curl_mime_addpart(out->mime.get());
    if (part == nullptr ||
        curl_mime_name(part, key.c_str()) != CURLE_OK ||
        curl_mime_data(part, value.data(), value.size()) != CURLE_OK) {
      return absl::InternalError("cannot build the multipart request");
    }
  }
  return absl::OkStatus();  // curl sets the multipart Content-Type itself
}

absl::Status EncodeJson(const Params& params, EncodedBody* out) {
  google::protobuf::Struct body;
  for (const auto& [key, value] : params) {
    (*body.mutable_fields())[key].set_string_value(value);
  }
  if (!google::protobuf::util::MessageToJsonString(body, &out->data).ok()) {
    return absl::InternalError("cannot JSON-encode the request");
  }
  AppendHeader(out->headers, "Content-Type: application/json");
  return absl::OkStatus();
}

absl::StatusOr<EncodedBody> EncodeBody(CURL* curl, const v1::Tenant& tenant,
                                       const Params& params) {
  EncodedBody body;
  const std::string& encoding = tenant.request_encoding();
  absl::Status status;
  if (encoding.empty() || encoding == "form") {
    status = EncodeForm(curl, params, &body);
  } else if (encoding == "multipart") {
    status = EncodeMultipart(curl, params, &body);
  } else if (encoding == "json") {
    status = EncodeJson(params, &body);
  } else {
    return TenantError(absl::StatusCode::kFailedPrecondition, tenant.name(),
                       absl::StrCat("unsupported requestEncoding \"",
                                    encoding, "\""));
  }
  if (!status.ok()) {
    return TenantError(status.code(), tenant.name(), status.message());
  }
  AppendHeader(body.headers, "Accept: application/json");
  // No "Expect: 100-continue" round trip for a body of a few hundred bytes.
  AppendHeader(body.headers, "Expect:");
  return body;
}

// ---------------------------------------------------------------------------
// One HTTP exchange.

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
    check(curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                           static_cast<curl_off_t>(body.data.size())));
    check(curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data.c_str()));
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

// Runs one POST on `curl`. Fails only if the request could not be built;
// transfer failures are recorded in `exchange`.
absl::Status Perform(CURL* curl, const v1::Tenant& tenant,
                     const UpstreamSettings& settings,
                     const Params& params, HttpExchange* exchange) {
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

// ---------------------------------------------------------------------------
// What it means.

// In TLS 1.3 the server checks our certificate after our side of the
// handshake is done, so its refusal surfaces on the first write or read: as
// the server's alert if we read it, or — when the server's close wins the
// race — as a failed send on a connection this transfer has just set up,
// before any answer. A server that hangs up before reading a request it
// accepted a handshake for has no other common reason to do so.
bool IsSilentCertificateRefusal(const HttpExchange& exchange) {
  return exchange.code == CURLE_SEND_ERROR &&
         !absl::StrContains(exchange.error_buffer, "alert") &&
         exchange.new_connections > 0 && exchange.tls_handshake_done &&
         exchange.response_header_bytes == 0;
}

// What failed, in the words of FetchResult's contract.
absl::string_view FailureKind(const HttpExchange& exchange) {
  switch (exchange.code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return "connect";
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_ABORTED_BY_CALLBACK:
      return "aborted";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return "TLS";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      // A TLS alert from the server, typically refusing our certificate.
      if (absl::StrContains(exchange.error_buffer, "alert") ||
          IsSilentCertificateRefusal(exchange)) {
        return "TLS";
      }
      return "network";
    default:
      return "network";
  }
}

absl::Status TransferError(absl::string_view tenant,
                           const HttpExchange& exchange) {
  if (exchange.body_too_large) {
    return TenantError(absl::StatusCode::kUnavailable, tenant,
                       absl::StrCat("network error: response larger than ",
                                    kMaxResponseBytes, " bytes"));
  }
  if (exchange.code == CURLE_ABORTED_BY_CALLBACK) {
    return TenantError(absl::StatusCode::kUnavailable, tenant,
                       "request aborted: the broker is shutting down");
  }
  const absl::string_view detail = exchange.error_buffer;
  const absl::string_view kind = FailureKind(exchange);
  std::string what = absl::StrCat(kind, kind == "timeout" ? ": " : " error: ");
  if (IsSilentCertificateRefusal(exchange)) {
    absl::StrAppend(&what, "connection closed right after the handshake "
                           "(client certificate refused?): ");
  }
  absl::StrAppend(&what, curl_easy_strerror(exchange.code));
  if (!detail.empty()) absl::StrAppend(&what, " (", detail, ")");
  return TenantError(absl::StatusCode::kUnavailable, tenant, what);
}

std::string Redact(std::string text, const std::vector<Secret>& secrets) {
  for (const Secret& secret : secrets) {
    if (!secret.empty()) {
      absl::StrReplaceAll({{secret.view(), "[redacted]"}}, &text);
    }
  }
  return text;
}

std::string DescribeOAuthError(const OAuthError& error,
                               const TokenRequest& request) {
  std::string text = error.code;
  if (!error.description.empty()) {
    absl::StrAppend(&text, " (", error.description, ")");
  }
  return Redact(std::move(text), request.secrets);
}

// A metrics label: RFC 6749 §5.2 codes as themselves, anything else (free
// text from the server) folded so label values stay a small fixed set.
std::string OAuthOutcome(absl::string_view code) {
  static constexpr absl::string_view kKnown[] = {
      "invalid_request", "invalid_client",         "invalid_grant",
      "unauthorized_client", "unsupported_grant_type", "invalid_scope"};
  for (absl::string_view known : kKnown) {
    if (code == known) return absl::StrCat("oauth_", known);
  }
  return "oauth_other";
}

bool IsCredentialRefusal(long http_status) {
  return http_status == 400 || http_status == 401 || http_status == 403;
}

FetchResult Classify(const std::string& tenant, const TokenRequest& request,
                     const HttpExchange& exchange, absl::Time now) {
  FetchResult result;
  if (exchange.code != CURLE_OK) {
    result.token = TransferError(tenant, exchange);
    result.outcome = exchange.body_too_large
                         ? "network"
                         : absl::AsciiStrToLower(FailureKind(exchange));
    return result;
  }
  if (exchange.http_status == 200) {
    absl::StatusOr<Token> token = ParseTokenResponse(exchange.body, now);
    if (token.ok()) {
      result.token = *std::move(token);
      result.outcome = "ok";
    } else {
      result.outcome = "unparsable";
      result.token = TenantError(
          absl::StatusCode::kUnavailable, tenant,
          absl::StrCat("unparsable token response: ",
                       absl::StripPrefix(token.status().message(),
                                         "token response: ")));
    }
    return result;
  }
  result.retry_after = internal::ParseRetryAfter(exchange.retry_after, now);
  const std::optional<OAuthError> error = ParseOAuthError(exchange.body);
  if (error.has_value() && IsCredentialRefusal(exchange.http_status)) {
    result.refresh_token_rejected = request.grant == Grant::kRefreshToken &&
                                    error->code == "invalid_grant";
    result.outcome = OAuthOutcome(error->code);
    result.token = TenantError(
        absl::StatusCode::kFailedPrecondition, tenant,
        absl::StrCat("Treezor refused the ",
                     result.refresh_token_rejected ? "refresh token"
                                                   : "credentials",
                     ": ", DescribeOAuthError(*error, request)));
    return result;
  }
  result.outcome = exchange.http_status == 429
                       ? "http_429"
                       : absl::StrCat("http_", exchange.http_status / 100, "xx");
  std::string what = absl::StrCat("HTTP ", exchange.http_status);
  if (error.has_value()) {
    absl::StrAppend(&what, " (", DescribeOAuthError(*error, request), ")");
  }
  result.token = TenantError(absl::StatusCode::kUnavailable, tenant, what);
  return result;
}

// ---------------------------------------------------------------------------
// The one log line per request.

struct RequestLog {
  absl::string_view tenant;
  absl::string_view grant = "-";
  long http_status = 0;
  int64_t duration_ms = 0;
  long new_connections = 0;
  bool tls_handshake_done = false;
  long response_header_bytes = 0;
};

void LogOutcome(const RequestLog& log, const FetchResult& result) {
  if (result.token.ok()) {
    LogInfo("treezor token request",
            {{"tenant", log.tenant},
             {"grant_type", log.grant},
             {"outcome", result.outcome},
             {"http_status", log.http_status},
             {"duration_ms", log.duration_ms},
             {"new_connections", log.new_connections},
             {"token_fp", TokenFingerprint(result.token->access_token)},
             {"lifetime_s",
              absl::ToInt64Seconds(result.token->lifetime())}});
    return;
  }
  LogWarning("treezor token request failed",
             {{"tenant", log.tenant},
              {"grant_type", log.grant},
              {"outcome", result.outcome},
              {"code", absl::StatusCodeToString(result.token.status().code())},
              {"http_status", log.http_status},
              {"duration_ms", log.duration_ms},
              {"new_connections", log.new_connections},
              {"refresh_token_rejected", result.refresh_token_rejected},
              {"error", result.token.status().message()}});
}

// ---------------------------------------------------------------------------
// Idle handles.

}  // namespace

namespace internal {

// Idle curl handles of all tenants, most recently used first, each tagged
// with the tenant state it last served. A handle keeps its open connection to
// that tenant's Treezor host, so the tenant's next request skips the
// handshake. The pool is bounded in total, not per tenant: with thousands of
// tenants (each renewing once per token lifetime) per-tenant pools held two
// file descriptors and ~18 KB per tenant for connections that Treezor closes
// long before they are reused (measured in tests/bench/README.md).
class CurlHandlePool {
 public:
  explicit CurlHandlePool(size_t max_idle) : max_idle_(max_idle) {}

  // The most recent idle handle of `tenant_id` if any, else a new one (null
  // if curl cannot make one). Handles are never moved between tenants: a
  // connection opened with one tenant's client certificate stays with it.
  CurlHandle Take(uint64_t tenant_id) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(&mu_);
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->first == tenant_id) {
          CurlHandle handle = std::move(it->second);
          idle_.erase(it);
          return handle;
        }
      }
    }
    return CurlHandle(curl_easy_init());
  }

  void Return(uint64_t tenant_id, CurlHandle handle) ABSL_LOCKS_EXCLUDED(mu_) {
    CurlHandle evicted;  // closes after the lock is released
    MutexLock lock(&mu_);
    idle_.emplace_front(tenant_id, std::move(handle));
    if (idle_.size() > max_idle_) {
      evicted = std::move(idle_.back().second);
      idle_.pop_back();
    }
  }

  // Closes `tenant_id`'s idle handles (its settings or certificate changed).
  void Drop(uint64_t tenant_id) ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<CurlHandle> closed;  // close after the lock is released
    MutexLock lock(&mu_);
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (it->first == tenant_id) {
        closed.push_back(std::move(it->second));
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
  }

  size_t idle() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return idle_.size();
  }

 private:
  const size_t max_idle_;
  mutable Mutex mu_;
  std::list<std::pair<uint64_t, CurlHandle>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

namespace {

// A handle taken from the pool for one request, given back however the
// request ends.
class PooledHandle {
 public:
  PooledHandle(internal::CurlHandlePool* pool, uint64_t tenant_id)
      : pool_(pool), tenant_id_(tenant_id), handle_(pool->Take(tenant_id)) {}
  ~PooledHandle() {
    if (handle_ != nullptr) pool_->Return(tenant_id_, std::move(handle_));
  }
  PooledHandle(const PooledHandle&) = delete;
  PooledHandle& operator=(const PooledHandle&) = delete;

  CURL* get() const { return handle_.get(); }

 private:
  internal::CurlHandlePool* const pool_;
  const uint64_t tenant_id_;
  CurlHandle handle_;
};

uint64_t NextTenantStateId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

}  // namespace


struct TreezorOAuthClient::TenantState {
  explicit TenantState(v1::Tenant tenant)
      : config(std::move(tenant)), id(NextTenantStateId()) {}
  const v1::Tenant config;
  // Tags this tenant's pooled handles; a new state (changed settings, reset
  // connections) gets a new id, so old connections are never reused.
  const uint64_t id;
};

TreezorOAuthClient::TreezorOAuthClient(std::vector<v1::Tenant> tenants,
                                       const UpstreamSettings& settings,
                                       Clock* clock)
    : settings_(settings),
      clock_(clock),
      pool_(std::make_unique<internal::CurlHandlePool>(
          static_cast<size_t>(std::max(0, settings.max_idle_connections)))) {
  InitCurlOnce();
  UpdateTenants(std::move(tenants));
}

TreezorOAuthClient::~TreezorOAuthClient() = default;

void TreezorOAuthClient::UpdateTenants(std::vector<v1::Tenant> tenants) {
  absl::flat_hash_map<std::string, std::shared_ptr<TenantState>> next;
  std::vector<uint64_t> replaced;
  {
    MutexLock lock(&mu_);
    for (v1::Tenant& tenant : tenants) {
      const auto it = tenants_.find(tenant.name());
      if (it != tenants_.end() &&
          google::protobuf::util::MessageDifferencer::Equals(it->second->config,
                                                             tenant)) {
        next[tenant.name()] = it->second;
      } else {
        const std::string name = tenant.name();
        next[name] = std::make_shared<TenantState>(std::move(tenant));
      }
    }
    for (const auto& [name, state] : tenants_) {
      auto it = next.find(name);
      if (it == next.end() || it->second != state) replaced.push_back(state->id);
    }
    tenants_.swap(next);
  }
  // Removed or changed tenants: close their idle connections now.
  for (uint64_t id : replaced) pool_->Drop(id);
}

void TreezorOAuthClient::ResetConnections(const std::string& tenant) {
  uint64_t previous_id;
  {
    MutexLock lock(&mu_);
    auto it = tenants_.find(tenant);
    if (it == tenants_.end()) return;
    previous_id = it->second->id;
    it->second = std::make_shared<TenantState>(it->second->config);
  }
  // A request in flight returns its handle under the old id: never reused.
  pool_->Drop(previous_id);
}

size_t TreezorOAuthClient::idle_connections() const { return pool_->idle(); }

std::shared_ptr<TreezorOAuthClient::TenantState> TreezorOAuthClient::FindTenant(
    const std::string& name) const {
  MutexLock lock(&mu_);
  const auto it = tenants_.find(name);
  return it == tenants_.end() ? nullptr : it->second;
}

FetchResult TreezorOAuthClient::Fetch(const FetchRequest& request) {
  RequestLog log{.tenant = request.tenant};
  FetchResult result;
  const std::shared_ptr<TenantState> tenant = FindTenant(request.tenant);
  if (tenant == nullptr) {
    result.token = TenantError(absl::StatusCode::kNotFound, request.tenant,
                               "not configured");
    result.outcome = "not_configured";
    LogOutcome(log, result);
    return result;
  }
  if (shutting_down_.load()) {
    result.token = TenantError(absl::StatusCode::kUnavailable, request.tenant,
                               "the broker is shutting down");
    result.outcome = "aborted";
    LogOutcome(log, result);
    return result;
  }
  const v1::Tenant& config = tenant->config;
  if (!absl::StartsWithIgnoreCase(config.base_url(), "https://")) {
    result.token = TenantError(absl::StatusCode::kFailedPrecondition,
                               request.tenant, "baseUrl must be https://");
    result.outcome = "config";
    LogOutcome(log, result);
    return result;
  }
  absl::StatusOr<TokenRequest> token_request =
      BuildTokenRequest(config, request);
  if (!token_request.ok()) {
    result.token = token_request.status();
    result.outcome = "config";
    LogOutcome(log, result);
    return result;
  }
  log.grant = GrantName(token_request->grant);

  PooledHandle handle(pool_.get(), tenant->id);
  if (handle.get() == nullptr) {
    result.token = TenantError(absl::StatusCode::kUnavailable, request.tenant,
                               "network error: cannot create a curl handle");
    result.outcome = "network";
    LogOutcome(log, result);
    return result;
  }
  HttpExchange exchange;
  exchange.cancelled = &shutting_down_;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status performed = Perform(handle.get(), config, settings_,
                                         token_request->params, &exchange);
  log.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
  log.http_status = exchange.http_status;
  log.new_connections = exchange.new_connections;
  if (!performed.ok()) {
    result.token = performed;
    result.outcome = "network";
  } else {
    result = Classify(request.tenant, *token_request, exchange,
                      clock_->Now());
  }
  result.grant_type = std::string(log.grant);
  LogOutcome(log, result);
  return result;
}

namespace internal {

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(value, &seconds)) {
    if (seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  const time_t when = curl_getdate(std::string(value).c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return std::max(absl::ZeroDuration(), absl::FromTimeT(when) - now);
}

}  // namespace internal
}  // namespace treezor::broker
