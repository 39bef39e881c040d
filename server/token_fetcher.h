// What the token cache needs from Treezor: one token request, made
// synchronously on a worker thread of the cache (never on a caller's thread,
// never under a lock). TreezorOAuthClient is the real implementation; tests use
// fakes.
//
// Thread-safety: Fetch may be called concurrently from several threads, for
// the same or different tenants.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_FETCHER_H_
#define TREEZOR_BROKER_SERVER_TOKEN_FETCHER_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/scope_set.h"
#include "server/token.h"

namespace treezor::broker {

struct FetchRequest {
  std::string tenant;
  ScopeSet scopes;
  // Password grant: the refresh token of the previous answer, if the chain is
  // still young enough; empty means "authenticate from scratch".
  std::string refresh_token;
};

struct FetchResult {
  // On success, the token (refresh_token set for the password grant).
  // Errors:
  //  - UNAVAILABLE: worth retrying (network, TLS, timeout, 5xx, 429,
  //    unparsable answer). The message says which.
  //  - FAILED_PRECONDITION: Treezor refused the credentials (OAuth error);
  //    message "tenant <name>: Treezor refused ...: <code> (<description>)".
  //  - NOT_FOUND: the tenant is not configured (any more).
  // Messages never contain a secret or a token.
  absl::StatusOr<Token> token;
  // Server-requested delay before the next attempt (HTTP Retry-After).
  std::optional<absl::Duration> retry_after = std::nullopt;
  // True when `refresh_token` was sent and Treezor refused it (invalid_grant):
  // the caller should discard the chain and authenticate from scratch at once.
  bool refresh_token_rejected = false;
  // For metrics, from a small fixed set: "ok", "connect", "tls", "timeout",
  // "network", "aborted" (at shutdown), "http_429", "http_4xx", "http_5xx",
  // "unparsable",
  // "oauth_<RFC 6749 error code>" or "oauth_other", "config",
  // "not_configured"; the token cache reports "short_lifetime" for a token
  // it refused as living less than renewal.min_token_lifetime.
  std::string outcome;
  // The grant sent: "client_credentials", "password", "refresh_token"; empty
  // if no request was sent.
  std::string grant_type;
};

class TokenFetcher {
 public:
  virtual ~TokenFetcher() = default;
  virtual FetchResult Fetch(const FetchRequest& request) = 0;
  // At shutdown: requests in flight end soon (UNAVAILABLE) instead of
  // running to their timeout, and later ones fail at once. Idempotent.
  virtual void Shutdown() {}
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_FETCHER_H_
