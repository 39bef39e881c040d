#include "server/broker_progress.h"

namespace treezor::broker {

void BrokerProgress::FetchDone() {
  MutexLock lock(&mu_);
  ++fetches_done_;
  cv_.SignalAll();
}

void BrokerProgress::SetGeneration(int64_t generation) {
  MutexLock lock(&mu_);
  generation_ = generation;
  cv_.SignalAll();
}

void BrokerProgress::SetReady(bool ready) {
  MutexLock lock(&mu_);
  ready_ = ready;
  cv_.SignalAll();
}

int64_t BrokerProgress::fetches_done() const {
  MutexLock lock(&mu_);
  return fetches_done_;
}

bool BrokerProgress::WaitForFetches(int64_t n, absl::Duration timeout) {
  MutexLock lock(&mu_);
  return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                       [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return fetches_done_ >= n;
                       });
}

bool BrokerProgress::WaitForGeneration(int64_t n, absl::Duration timeout) {
  MutexLock lock(&mu_);
  return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                       [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return generation_ >= n;
                       });
}

bool BrokerProgress::WaitUntilReady(absl::Duration timeout) {
  MutexLock lock(&mu_);
  return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                       [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return ready_;
                       });
}

}  // namespace treezor::broker
