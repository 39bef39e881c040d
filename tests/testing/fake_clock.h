// A Clock that moves only when a test says so. Components that sleep until a
// due time (the token cache's refresher) register a listener so that
// Advance() wakes them to re-check what is due — tests never sleep.
// Advance() moves the wall clock and the monotonic one together;
// StepWallClock() moves the wall clock alone (backwards too), as NTP or an
// operator would. The monotonic timeline starts far from the wall clock's,
// so code mixing the two timelines fails its tests.
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
  absl::Time MonotonicNow() const override ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return monotonic_;
  }

  // Time passes: both clocks move by `d` (>= 0 for the monotonic one to
  // stay monotonic).
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_) {
    Move(d, d);
  }
  // The wall clock is stepped by `d`, either way; no time passes.
  void StepWallClock(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_) {
    Move(d, absl::ZeroDuration());
  }

  void Set(absl::Time t) ABSL_LOCKS_EXCLUDED(mu_) { Advance(t - Now()); }

  // Called (without the clock's lock) after every Advance or step.
  void AddListener(std::function<void()> listener) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    listeners_.push_back(std::move(listener));
  }

 private:
  void Move(absl::Duration wall, absl::Duration monotonic)
      ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::function<void()>> listeners;
    {
      MutexLock lock(&mu_);
      now_ += wall;
      monotonic_ += monotonic;
      listeners = listeners_;
    }
    for (auto& l : listeners) l();
  }

  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::Time monotonic_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1'000'000);
  std::vector<std::function<void()>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_FAKE_CLOCK_H_
