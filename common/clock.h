// Time source injected into every component that reads the time — the
// broker's components and the client library's TokenClient alike — so tests
// advance a fake clock instead of sleeping (tests/testing/fake_clock.h).
//
//   TokenCache cache(&fetcher, renewal, workers, {.clock = &clock});
//   absl::Time now = clock->Now();
//
// Two readings: Now() is the wall clock (what timestamps, logs and the API's
// expires_at use); MonotonicNow() is a steady clock on its own timeline that
// never jumps with wall-clock steps (NTP, an operator). Only differences of
// MonotonicNow() readings mean anything: durations and deadlines that must
// survive a wall-clock step (token validity in the broker's cache) are
// decided on it.
//
// Thread-safety: implementations must be safe to call from any thread.
#ifndef TREEZOR_COMMON_CLOCK_H_
#define TREEZOR_COMMON_CLOCK_H_

#include <chrono>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace treezor {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The steady timeline (see above). The default, Now(), keeps clocks
  // written before it existed compiling; they get no step protection.
  virtual absl::Time MonotonicNow() const { return Now(); }
};

// absl::Now(), and std::chrono::steady_clock for MonotonicNow().
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Time MonotonicNow() const override {
    return absl::UnixEpoch() +
           absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  }
  // Process-wide instance; never destroyed.
  static Clock* Get() {
    static SystemClock* const clock = new SystemClock;
    return clock;
  }
};

}  // namespace treezor

#endif  // TREEZOR_COMMON_CLOCK_H_
