#include "server/treezor_oauth_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/token_digest.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/curl_handle.h"
#include "server/curl_handle_pool.h"
#include "server/http_exchange.h"
#include "server/logging.h"
#include "server/oauth_response.h"
#include "server/token_request.h"

namespace treezor::broker {
namespace {

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

// A metrics label: RFC 6749 §5.2 codes as themselves, anything else (free
// text from the server) folded so label values stay a small fixed set.
std::string OAuthOutcome(absl::string_view code) {
  return IsRfc6749ErrorCode(code) ? absl::StrCat("oauth_", code)
                                  : std::string("oauth_other");
}

bool IsCredentialRefusal(long http_status) {
  return http_status == 400 || http_status == 401 || http_status == 403;
}

// What a fetch came to, and Treezor's OAuth error if it sent one (its
// description is for the log line only).
struct Classified {
  FetchResult result;
  std::optional<OAuthError> oauth_error;
};

// Callers learn the OAuth error code and the HTTP status, never the
// server's free text.
Classified Classify(const std::string& tenant, const TokenRequest& request,
                    const HttpExchange& exchange, absl::Time now) {
  Classified out;
  FetchResult& result = out.result;
  if (exchange.code != CURLE_OK) {
    result.token = TransferError(tenant, exchange);
    result.outcome = exchange.body_too_large
                         ? "network"
                         : absl::AsciiStrToLower(FailureKind(exchange));
    return out;
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
    return out;
  }
  result.retry_after = internal::ParseRetryAfter(exchange.retry_after, now);
  out.oauth_error = ParseOAuthError(exchange.body, request.redactor);
  const std::optional<OAuthError>& error = out.oauth_error;
  if (error.has_value() && IsCredentialRefusal(exchange.http_status)) {
    result.refresh_token_rejected = request.grant == Grant::kRefreshToken &&
                                    error->code == "invalid_grant";
    result.outcome = OAuthOutcome(error->code);
    result.token = TenantError(
        absl::StatusCode::kFailedPrecondition, tenant,
        absl::StrCat("Treezor refused the ",
                     result.refresh_token_rejected ? "refresh token"
                                                   : "credentials",
                     ": ", error->code, " (HTTP ", exchange.http_status, ")"));
    return out;
  }
  result.outcome = exchange.http_status == 429
                       ? "http_429"
                       : absl::StrCat("http_", exchange.http_status / 100, "xx");
  std::string what = absl::StrCat("HTTP ", exchange.http_status);
  if (error.has_value()) absl::StrAppend(&what, " (", error->code, ")");
  result.token = TenantError(absl::StatusCode::kUnavailable, tenant, what);
  return out;
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

// `oauth_error`: Treezor's error, already redacted and bounded.
void LogOutcome(const RequestLog& log, const FetchResult& result,
                const std::optional<OAuthError>& oauth_error = std::nullopt) {
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
  std::vector<LogField> fields = {
      {"tenant", log.tenant},
      {"grant_type", log.grant},
      {"outcome", result.outcome},
      {"code", absl::StatusCodeToString(result.token.status().code())},
      {"http_status", log.http_status},
      {"duration_ms", log.duration_ms},
      {"new_connections", log.new_connections},
      {"refresh_token_rejected", result.refresh_token_rejected},
      {"error", result.token.status().message()}};
  if (oauth_error.has_value()) {
    fields.emplace_back("oauth_error", oauth_error->code);
    fields.emplace_back("oauth_error_description", oauth_error->description);
  }
  Log(LogLevel::kWarning, "treezor token request failed", fields);
}

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
  internal::InitCurlOnce();
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

  internal::PooledHandle handle(pool_.get(), tenant->id);
  if (handle.get() == nullptr) {
    result.token = TenantError(absl::StatusCode::kUnavailable, request.tenant,
                               "network error: cannot create a curl handle");
    result.outcome = "network";
    LogOutcome(log, result);
    return result;
  }
  HttpExchange exchange;
  exchange.cancelled = &shutting_down_;
  std::optional<OAuthError> oauth_error;
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
    Classified classified =
        Classify(request.tenant, *token_request, exchange, clock_->Now());
    result = std::move(classified.result);
    oauth_error = std::move(classified.oauth_error);
  }
  result.grant_type = std::string(log.grant);
  LogOutcome(log, result, oauth_error);
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
