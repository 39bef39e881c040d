// treezor.broker.v1.TokenService: thin — parse, authorize, delegate to the
// TokenCache, and finish through RpcAudit (audit line, metric, status).
// Callback API, so a caller waiting for a cold fetch holds no thread: the
// cache answers the reactor when the fetch completes.
//
// GetToken is registered as a raw method (grpc::ByteBuffer in and out; the
// wire format is GetTokenRequest/GetTokenResponse all the same, and
// reflection still describes it): it parses the request itself, and answers
// with the serialized response its token keeps (CachedToken::derived), made
// once per token, so a cache hit neither fills nor serializes a message.
//
//   TokenService service(&cache, policy, clock, &metrics);
//   builder.RegisterService(&service);
//   service.SetPolicy(new_policy);  // config reload
//
// Open WatchToken streams are capped per matched caller identity
// (limits.maxWatchStreamsPerCaller): the count is checked and taken under the
// lock that authorizes and registers a stream, and given back when the
// stream unregisters (OnDone), so a stream that ends frees its slot. The slot
// stays with the identity that matched at the start, even if a reload later
// matches the stream through another entry.
//
// Thread-safety: thread-safe; the policy can be swapped at any time
// (config reload): it applies to the next RPC and to every open stream.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_SERVICE_H_
#define TREEZOR_BROKER_SERVER_TOKEN_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "common/clock.h"
#include "common/sync.h"
#include "server/metrics.h"
#include "server/peer_identity.h"
#include "server/policy.h"
#include "server/settings.h"
#include "server/token_cache.h"
#include "server/watch_token_reactor.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::broker {

// What the policy says of one certificate (token_service.cc).
struct CallerDecision;

class TokenService final
    : public v1::TokenService::WithRawCallbackMethod_GetToken<
          v1::TokenService::WithCallbackMethod_WatchToken<
              v1::TokenService::Service>> {
 public:
  // `cache`, `clock` and `metrics` (nullable) must outlive the service.
  // `max_watch_streams_per_caller`: limits.maxWatchStreamsPerCaller.
  TokenService(TokenCache* cache, std::shared_ptr<const Policy> policy,
               Clock* clock, BrokerMetrics* metrics = nullptr,
               int max_watch_streams_per_caller =
                   LimitsSettings().max_watch_streams_per_caller);
  ~TokenService() override;

  // Swaps the policy (every config reload calls it) and authorizes every
  // open WatchToken stream again against it (same identity, tenant and
  // requested scopes, and the same resolved scope set): a stream no longer
  // allowed ends with PERMISSION_DENIED before this returns, and receives
  // nothing more.
  void SetPolicy(std::shared_ptr<const Policy> policy)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every WatchToken stream with UNAVAILABLE ("shutting down") and
  // refuses new ones: at shutdown, before the server drains.
  void EndWatches() ABSL_LOCKS_EXCLUDED(mu_);
  int open_watches() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until exactly `n` open streams hold a slot of `identity` (a
  // matched config identity) or `timeout` (real time) passes; returns
  // whether they do. For tests and shutdown diagnostics.
  bool WaitForOpenWatchesOf(const std::string& identity, int n,
                            absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Calls whose caller was decided without a thread's kept decision (the
  // certificate looked up, the policy matched): once per connection and
  // gRPC thread for most callers, every call for one whose auth context is
  // too large to keep. For tests.
  uint64_t slow_decisions() const {
    return slow_decisions_.load(std::memory_order_relaxed);
  }

  // `request` and `response` are a GetTokenRequest and a GetTokenResponse
  // on the wire.
  grpc::ServerUnaryReactor* GetToken(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<v1::GetTokenResponse>* WatchToken(
      grpc::CallbackServerContext* context,
      const v1::WatchTokenRequest* request) override;

 private:
  std::shared_ptr<const Policy> policy() const ABSL_LOCKS_EXCLUDED(mu_);
  // The policy decision for the certificate `context`'s caller presents:
  // from the calling thread's last few (same service, same connection, same
  // policy), else from identities_ (keyed by the certificate's bytes). A
  // cached GetToken then neither reads the certificate nor takes a shared
  // lock for its caller.
  std::shared_ptr<const CallerDecision> DecideCaller(
      grpc::CallbackServerContext* context) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(WatchTokenReactor* reactor) ABSL_LOCKS_EXCLUDED(mu_);
  // OK if `watch` is still allowed under `policy`.
  static absl::Status Reauthorize(const Policy& policy,
                                  const WatchTokenReactor& watch);

  TokenCache* const cache_;
  Clock* const clock_;
  BrokerMetrics* const metrics_;
  const int max_watch_streams_per_caller_;
  // Callers' identities, parsed once per certificate.
  PeerIdentityMemo identities_;
  // Keys the threads' recent decisions: unique per service, never reused
  // (an address could be, by a later service).
  const uint64_t id_;
  // policy_.get(), readable without the lock: a decision whose policy is
  // this one is current (it holds its policy, so the address cannot be a
  // later policy's).
  std::atomic<const Policy*> current_policy_;
  std::atomic<uint64_t> slow_decisions_{0};
  mutable Mutex mu_;
  std::shared_ptr<const Policy> policy_ ABSL_GUARDED_BY(mu_);
  bool watches_ended_ ABSL_GUARDED_BY(mu_) = false;
  std::set<WatchTokenReactor*> watches_ ABSL_GUARDED_BY(mu_);
  // Open authorized streams per matched identity (Grant::slot_owner); an
  // identity with none has no entry.
  absl::flat_hash_map<std::string, int> watches_per_caller_
      ABSL_GUARDED_BY(mu_);
  // Signalled whenever watches_per_caller_ changes.
  mutable CondVar watches_changed_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_SERVICE_H_
