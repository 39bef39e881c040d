// The real TokenFetcher: one POST to a tenant's `/oauth/token` over mutual TLS
// (libcurl), classified into a FetchResult.
//
//   TreezorOAuthClient client(tenants, settings.upstream, clock);
//   FetchResult r = client.Fetch({.tenant = "acme", .scopes = scopes});
//
// One synchronous attempt per Fetch and no retries: the token cache owns
// retry, backoff and Retry-After. This class only says what happened:
// UNAVAILABLE (connect / TLS / timeout / network / HTTP <status> /
// unparsable token response), FAILED_PRECONDITION (Treezor refused the
// credentials, or a secret file/variable is missing or empty), NOT_FOUND
// (unknown tenant). Every message starts with "tenant <name>: ", names config
// fields by their JSON names (as config errors do) and never contains a
// secret or a token; one log line per request names the token only by
// TokenFingerprint. Of Treezor's OAuth error, callers get only the code and
// the HTTP status ("tenant acme: Treezor refused the credentials:
// invalid_client (HTTP 401)"); its free-text description goes to the
// request's log line only, with every trace of the request's secrets
// redacted first (server/secret_redactor.h), then bounded.
//
// The parts, each in its own file: what to send (server/token_request.h:
// the grant, the parameters, the secrets read now), how it is encoded
// (server/token_request_body.h: form, multipart, JSON), one HTTP exchange
// (server/http_exchange.h) on a pooled libcurl handle
// (server/curl_handle_pool.h: idle connections to Treezor are reused). This
// class runs a fetch, classifies the outcome and logs it.
//
// Thread-safety: Fetch and UpdateTenants may be called concurrently from any
// threads. A Fetch in flight during UpdateTenants finishes with the tenant
// configuration it started with.
#ifndef TREEZOR_BROKER_SERVER_TREEZOR_OAUTH_CLIENT_H_
#define TREEZOR_BROKER_SERVER_TREEZOR_OAUTH_CLIENT_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"
#include "server/settings.h"
#include "server/token_fetcher.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

namespace internal {
class CurlHandlePool;  // server/curl_handle_pool.h
}  // namespace internal

class TreezorOAuthClient final : public TokenFetcher {
 public:
  // `settings`: timeouts and the number of idle connections kept for reuse
  // across all tenants (most recently used first; each serves only the
  // tenant that opened it). `clock` gives Token::obtained_at / expires_at
  // and interprets an HTTP-date Retry-After; not owned, must outlive the
  // client.
  TreezorOAuthClient(std::vector<v1::Tenant> tenants,
                     const UpstreamSettings& settings,
                     Clock* clock = SystemClock::Get());
  ~TreezorOAuthClient() override;

  TreezorOAuthClient(const TreezorOAuthClient&) = delete;
  TreezorOAuthClient& operator=(const TreezorOAuthClient&) = delete;

  FetchResult Fetch(const FetchRequest& request) override
      ABSL_LOCKS_EXCLUDED(mu_);
  // Aborts requests in flight within about a second (libcurl's progress
  // callback), so a hanging Treezor cannot hold the broker's exit.
  void Shutdown() override { shutting_down_.store(true); }

  // Replaces the tenant set (configuration hot reload). Tenants whose
  // configuration is unchanged keep their idle connections; the others start
  // afresh.
  void UpdateTenants(std::vector<v1::Tenant> tenants) ABSL_LOCKS_EXCLUDED(mu_);

  // Closes `tenant`'s idle connections, so the next request handshakes
  // again and presents the (rotated) client certificate on disk.
  void ResetConnections(const std::string& tenant) ABSL_LOCKS_EXCLUDED(mu_);

  // Idle connections currently pooled (bounded by
  // UpstreamSettings::max_idle_connections).
  size_t idle_connections() const;

 private:
  // A tenant's configuration (defined in the .cc file, so libcurl stays out
  // of this header).
  struct TenantState;

  std::shared_ptr<TenantState> FindTenant(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);

  const UpstreamSettings settings_;
  Clock* const clock_;
  std::atomic<bool> shutting_down_{false};
  // Idle curl handles of all tenants.
  const std::unique_ptr<internal::CurlHandlePool> pool_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<TenantState>> tenants_
      ABSL_GUARDED_BY(mu_);
};

namespace internal {
// An HTTP Retry-After value (RFC 9110 §10.2.3): delta-seconds, or an
// HTTP-date turned into the delay from `now` (zero if already past).
// nullopt when it is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now);
}  // namespace internal

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TREEZOR_OAUTH_CLIENT_H_
