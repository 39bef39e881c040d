// The broker's readiness, as health reports it (services "" and
// treezor.broker.v1.TokenService): NOT_SERVING until every default scope set
// being warmed up has been fetched or has failed, SERVING after, and
// NOT_SERVING for good once the broker drains. Scope sets warmed up later (a
// reload adding tenants) do not make a ready broker unready.
//
//   Readiness readiness(&health, &progress);
//   readiness.Expect(keys);             // then cache.Prefetch(key) for each
//   ...                                 // cache events: readiness.OnFetchDone(key)
//   readiness.Drain();                  // at shutdown
//
// Thread-safety: thread-safe. Owns its state under its own lock; the health
// service and the progress are told while it is held, so they see
// transitions in order.
#ifndef TREEZOR_BROKER_SERVER_READINESS_H_
#define TREEZOR_BROKER_SERVER_READINESS_H_

#include <set>
#include <vector>

#include "common/sync.h"
#include "server/broker_progress.h"
#include "server/health_service.h"
#include "server/token_cache.h"

namespace treezor::broker {

class Readiness {
 public:
  // Both must outlive this object; `progress` may be null.
  Readiness(HealthService* health, BrokerProgress* progress);

  // Readiness waits for `keys` too (call before prefetching them). With
  // nothing left to wait for, the broker is ready at once.
  void Expect(const std::vector<CacheKey>& keys) ABSL_LOCKS_EXCLUDED(mu_);
  // A fetch of `key` completed (successfully or not).
  void OnFetchDone(const CacheKey& key) ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_SERVING from now on.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void MaybeReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  HealthService* const health_;
  BrokerProgress* const progress_;
  Mutex mu_;
  std::set<CacheKey> warming_up_ ABSL_GUARDED_BY(mu_);
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_READINESS_H_
