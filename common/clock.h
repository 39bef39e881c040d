// Time source injected into every component that reads the time — the
// broker's components and the client library's TokenClient alike — so tests
// advance a fake clock instead of sleeping (tests/testing/fake_clock.h).
//
//   TokenCache cache(&fetcher, renewal, workers, {.clock = &clock});
//   absl::Time now = clock->Now();
//
// Thread-safety: implementations must be safe to call from any thread.
#ifndef TREEZOR_COMMON_CLOCK_H_
#define TREEZOR_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace treezor {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// absl::Now().
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // Process-wide instance; never destroyed.
  static Clock* Get() {
    static SystemClock* const clock = new SystemClock;
    return clock;
  }
};

}  // namespace treezor

#endif  // TREEZOR_COMMON_CLOCK_H_
