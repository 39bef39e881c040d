// One WatchToken stream: the current token of (tenant, scope set) at once,
// then every token the cache obtains for it, until the caller hangs up or the
// broker ends the stream (shutdown, tenant removed, access revoked by a
// policy change: see TokenService::SetPolicy). Once End() has returned,
// nothing more is sent, not even a renewal that raced it.
//
//   auto* reactor = new WatchTokenReactor(cache, key, std::move(audit),
//                                         [](WatchTokenReactor* r) { ... });
//   reactor->Begin();           // or reactor->End(status) to refuse it
//   return reactor;             // gRPC owns it; it deletes itself in OnDone
//
// Writes are serialised: one in flight, and while one is, only the newest
// token is kept (a slow reader gets the latest token, not a backlog). The
// stream ends through RpcAudit, which writes its audit line.
//
// Thread-safety: every method may be called from any thread. The state that
// the cache's callbacks touch lives in a shared Stream, so a callback that
// fires after the RPC is done finds the reactor gone instead of freed memory.
#ifndef TREEZOR_BROKER_SERVER_WATCH_TOKEN_REACTOR_H_
#define TREEZOR_BROKER_SERVER_WATCH_TOKEN_REACTOR_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/peer_identity.h"
#include "server/rpc_audit.h"
#include "server/token_cache.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::broker {

class WatchTokenReactor final
    : public grpc::ServerWriteReactor<v1::GetTokenResponse> {
 public:
  // Called once, from OnDone, just before the reactor deletes itself.
  using DoneCallback = std::function<void(WatchTokenReactor*)>;

  // What the stream was granted for: kept so that every policy change can
  // authorize it again (same identity, tenant and requested scopes).
  struct Grant {
    PeerIdentity peer;
    std::string tenant;
    std::vector<std::string> requested_scopes;
    bool authorized = false;  // false: refused at once, nothing to recheck
    // The matched identity whose limits.maxWatchStreamsPerCaller slot this
    // stream holds (given back when it unregisters); empty: none.
    std::string slot_owner;
  };

  // `cache` must outlive the reactor.
  WatchTokenReactor(TokenCache* cache, CacheKey key, Grant grant,
                    RpcAudit audit, DoneCallback on_done);

  const CacheKey& key() const;
  const Grant& grant() const { return grant_; }

  // Fetches the current token, sends it, then subscribes to renewals.
  void Begin();
  // Ends the stream with `status` (the first call wins).
  void End(const absl::Status& status);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Stream;

  TokenCache* const cache_;
  const Grant grant_;
  const DoneCallback on_done_;
  const std::shared_ptr<Stream> stream_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_WATCH_TOKEN_REACTOR_H_
