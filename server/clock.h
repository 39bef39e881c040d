// Time source injected into every component that reads the time, so tests
// advance a fake clock instead of sleeping (tests/testing/fake_clock.h).
//
// Thread-safety: implementations must be safe to call from any thread.
#ifndef TREEZOR_BROKER_SERVER_CLOCK_H_
#define TREEZOR_BROKER_SERVER_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace treezor::broker {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // Process-wide instance; never destroyed.
  static Clock* Get() {
    static SystemClock* const clock = new SystemClock;
    return clock;
  }
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CLOCK_H_
