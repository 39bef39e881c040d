// A Clock that moves only when a test says so. Components that sleep until a
// due time (the token cache's refresher) register a listener so that
// Advance() wakes them to re-check what is due — tests never sleep.
#ifndef TREEZOR_BROKER_TESTS_TESTING_FAKE_CLOCK_H_
#define TREEZOR_BROKER_TESTS_TESTING_FAKE_CLOCK_H_

#include <functional>
#include <vector>

#include "common/clock.h"
#include "common/sync.h"

namespace treezor::broker::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000))
      : now_(start) {}

  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return now_;
  }

  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::function<void()>> listeners;
    {
      MutexLock lock(&mu_);
      now_ += d;
      listeners = listeners_;
    }
    for (auto& l : listeners) l();
  }

  void Set(absl::Time t) ABSL_LOCKS_EXCLUDED(mu_) { Advance(t - Now()); }

  // Called (without the clock's lock) after every Advance.
  void AddListener(std::function<void()> listener) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    listeners_.push_back(std::move(listener));
  }

 private:
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_FAKE_CLOCK_H_
