#include "server/readiness.h"

#include "server/logging.h"

namespace treezor::broker {

Readiness::Readiness(HealthService* health, BrokerProgress* progress)
    : health_(health), progress_(progress) {}

void Readiness::Expect(const std::vector<CacheKey>& keys) {
  MutexLock lock(&mu_);
  warming_up_.insert(keys.begin(), keys.end());
  MaybeReadyLocked();
}

void Readiness::OnFetchDone(const CacheKey& key) {
  MutexLock lock(&mu_);
  if (warming_up_.erase(key) > 0) MaybeReadyLocked();
}

void Readiness::Drain() {
  MutexLock lock(&mu_);
  draining_ = true;
  ready_ = false;
  health_->SetServing(false);
  if (progress_ != nullptr) progress_->SetReady(false);
}

void Readiness::MaybeReadyLocked() {
  if (!warming_up_.empty() || ready_ || draining_) return;
  ready_ = true;
  LogInfo("ready: every tenant's default token fetched or failed");
  health_->SetServing(true);
  if (progress_ != nullptr) progress_->SetReady(true);
}

}  // namespace treezor::broker
