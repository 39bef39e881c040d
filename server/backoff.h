// Retry delays after a failed token request: capped exponential backoff with
// full jitter (delay uniform in [0, min(max, initial * 2^(n-1))]), never
// shorter than the server's Retry-After (honoured up to one hour). Pure, so tests pick the random sample.
#ifndef TREEZOR_BROKER_SERVER_BACKOFF_H_
#define TREEZOR_BROKER_SERVER_BACKOFF_H_

#include <optional>

#include "absl/time/time.h"

namespace treezor::broker {

struct BackoffSettings {
  absl::Duration initial = absl::Seconds(1);
  absl::Duration max = absl::Seconds(60);
};

// `failures` counts consecutive failures including this one (>= 1);
// `unit` is a uniform sample in [0, 1].
absl::Duration BackoffDelay(const BackoffSettings& settings, int failures,
                            double unit,
                            std::optional<absl::Duration> retry_after);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_BACKOFF_H_
