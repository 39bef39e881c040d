// TokenClient: how a C++ service gets Treezor access tokens from the broker.
//
//   absl::StatusOr<std::unique_ptr<TokenClient>> client = TokenClient::Create({
//       .connection = {.address = "broker.internal:8443",
//                      .ca_file = "/tls/ca.crt", .cert_file = "/tls/tls.crt",
//                      .key_file = "/tls/tls.key"}});
//   absl::StatusOr<std::string> header =
//       (*client)->AuthorizationHeader("acme", {"read_write"});
//   // ... call Treezor with it; if Treezor answers 401:
//   (*client)->ReportRejected("acme", {"read_write"}, token.access_token);
//
// Cache. Tokens are cached in process per (tenant, scope set); the set is
// canonical, so {"b","a"} and {"a","b","a"} share one entry. A call is
// answered from the cache, with no RPC, while the token has more than its
// margin left: min(refresh_margin, 10 % of its lifetime as this client saw
// it) — the same rule the broker applies, so a token this client considers
// too old is one the broker replaces too. (A min_ttl asks for more.)
//
// Freshness. Every entry in use has one WatchToken stream: the broker pushes
// each renewed token (at about 75 % of the lifetime), so a busy service never
// waits for a token. When a stream breaks it is re-opened with capped,
// jittered exponential backoff; meanwhile an entry that gets within twice its
// margin of expiry is refreshed with a GetToken RPC (the fallback), and a
// caller that finds it too old makes that RPC itself. Entries unused for
// idle_timeout are dropped and their streams closed.
//
// Concurrency and cost. Thread-safe. Callers that miss the cache together
// share one GetToken RPC. A cache hit takes no lock and writes nothing that
// other threads read: each thread keeps its own snapshot of the entries it
// uses, valid until the cache changes any token (a renewal pushed or
// fetched, a rejection, an eviction: then every thread's next call takes
// the locked path once, and can never be answered with the replaced token).
// So threads hitting the same entry do not slow each other down. A hit
// costs a hash lookup in the thread's snapshots (at most 64 of them; a
// thread using more pays a locked lookup now and then) and, for GetToken,
// a copy of the token; GetSharedToken and AuthorizationHeader copy less
// (the hot path of a busy service; see tests/bench/README.md). Each thread
// still takes the lock about once a second per entry it uses, which is how
// the cache knows an entry is in use (idle_timeout).
//
// Errors are the broker's: the absl::Status has the gRPC status code and the
// broker's message (e.g. PERMISSION_DENIED: caller ... may not get tenant
// "acme"). A call that runs out of time is DEADLINE_EXCEEDED.
//
// Time: token validity is judged with `clock` (a treezor::Clock,
// common/clock.h: injectable for tests); waits and backoff use real time.
#ifndef TREEZOR_BROKER_CLIENT_TOKEN_CLIENT_H_
#define TREEZOR_BROKER_CLIENT_TOKEN_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/broker_channel.h"
#include "common/clock.h"

namespace treezor::client {

// The library's version, e.g. "0.1.0".
const char* Version();

struct Token {
  std::string access_token;  // the JWT
  std::string token_type;    // "Bearer"
  absl::Time expires_at;
  // The scope set the token was issued for, sorted (the tenant's default
  // scopes when none were asked for).
  std::vector<std::string> scopes;
  std::string tenant;
};

// What happened to a cache entry, for the application's logs and metrics.
struct TokenClientEvent {
  enum class Kind {
    kWatchConnected,     // a WatchToken stream delivered its first token
    kWatchBroken,        // a stream ended (`status`); it is re-opened later
    kTokenPushed,        // a stream delivered a new token into the cache
    kFallbackRefreshed,  // without a stream, a GetToken RPC renewed it
    kFallbackFailed,     // ... and failed (`status`)
    kEvicted,            // unused for idle_timeout: dropped, stream closed
  };
  Kind kind;
  std::string tenant;
  std::vector<std::string> scopes;  // as requested, canonical
  absl::Status status;
  std::string token_fingerprint;  // the new token's, when there is one
  absl::Time expires_at = absl::InfinitePast();
};

struct TokenClientOptions {
  BrokerConnection connection;
  // Deadline of a call that needs the broker (cache miss, ReportRejected),
  // unless CallOptions::timeout says otherwise; also of fallback RPCs.
  absl::Duration timeout = absl::Seconds(10);
  // Upper bound of the cache margin (see the class comment).
  absl::Duration refresh_margin = absl::Seconds(60);
  // Keep entries fresh with WatchToken streams. Off for one-shot tools: every
  // miss is then a GetToken RPC.
  bool watch = true;
  // Backoff between attempts to re-open a broken stream (and to retry the
  // fallback): min(max_backoff, initial_backoff * 2^(failures-1)), times a
  // random factor in [0.5, 1].
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
  // Entries not asked for this long are dropped. InfiniteDuration(): never.
  absl::Duration idle_timeout = absl::Minutes(30);
  // Judges token validity. Null: the system clock (absl::Now). Not owned;
  // must outlive the client. Tests pass the broker's fake clock.
  const Clock* clock = nullptr;
  // Called without locks held, from the client's or gRPC's threads, possibly
  // concurrently; must be quick and must not call back into the TokenClient.
  std::function<void(const TokenClientEvent&)> on_event;
};

// Per call.
struct CallOptions {
  // How long the call may wait for the broker. Zero: TokenClientOptions'.
  absl::Duration timeout = absl::ZeroDuration();
  // The token must stay valid at least this long (sent as min_ttl when the
  // cached one does not).
  absl::Duration min_ttl = absl::ZeroDuration();
};

class TokenClient {
 public:
  // Checks the certificate files (INVALID_ARGUMENT naming the file) and
  // creates the channel; connects lazily, on the first call.
  static absl::StatusOr<std::unique_ptr<TokenClient>> Create(
      TokenClientOptions options);

  // Ends the streams and in-flight RPCs and waits for them to finish. No
  // call may be running.
  ~TokenClient();
  TokenClient(const TokenClient&) = delete;
  TokenClient& operator=(const TokenClient&) = delete;

  // A token for `tenant` and `scopes` (empty: the tenant's default scopes),
  // from the cache when it has one with more than its margin left.
  absl::StatusOr<Token> GetToken(absl::string_view tenant,
                                 const std::vector<std::string>& scopes = {},
                                 const CallOptions& call = {});

  // The same token without copying it: the cache's immutable Token itself,
  // shared. Keep the pointer as long as you need the token, on any thread;
  // the cache only ever replaces its own pointer, never the Token behind
  // yours (so a held token may be expired or replaced: ask again per
  // request, it is cheap). The pointer may outlive the TokenClient.
  //
  // On a cache hit the pointer shares ownership through a holder private
  // to the calling thread, so that threads asking for the same token do
  // not all write one shared reference count: get() is the cache's Token
  // (equal across threads and calls for the same token), use_count() says
  // nothing about how many holders there are.
  absl::StatusOr<std::shared_ptr<const Token>> GetSharedToken(
      absl::string_view tenant, const std::vector<std::string>& scopes = {},
      const CallOptions& call = {});

  // "Bearer <access token>", for an HTTP Authorization header.
  absl::StatusOr<std::string> AuthorizationHeader(
      absl::string_view tenant, const std::vector<std::string>& scopes = {},
      const CallOptions& call = {});

  // For when Treezor answered 401 to `rejected_access_token`: asks the broker
  // to replace it (sending its SHA-256, never the token) and returns the
  // replacement, which the cache then holds. If the cache already holds
  // another valid token, that one is returned without an RPC.
  absl::StatusOr<Token> ReportRejected(absl::string_view tenant,
                                       const std::vector<std::string>& scopes,
                                       absl::string_view rejected_access_token,
                                       const CallOptions& call = {});
  // The same, for a token this client handed out (its entry is looked up by
  // the token); NOT_FOUND if no entry holds it any more.
  absl::StatusOr<Token> ReportRejected(absl::string_view rejected_access_token,
                                       const CallOptions& call = {});

 private:
  class Impl;
  explicit TokenClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treezor::client

#endif  // TREEZOR_BROKER_CLIENT_TOKEN_CLIENT_H_
