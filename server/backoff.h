// The broker's delay before retrying a failed token request: capped
// exponential backoff (common/backoff.h) with full jitter — the delay is
// uniform in [0, min(max, initial * 2^(n-1))] — and never shorter than the
// server's Retry-After (honoured up to one hour). Pure, so tests pick the
// random sample.
#ifndef TREEZOR_BROKER_SERVER_BACKOFF_H_
#define TREEZOR_BROKER_SERVER_BACKOFF_H_

#include <optional>

#include "absl/time/time.h"
#include "common/backoff.h"

namespace treezor::broker {

// `failures` counts consecutive failures including this one (>= 1);
// `unit` is a uniform sample in [0, 1].
absl::Duration BackoffDelay(const BackoffSettings& settings, int failures,
                            double unit,
                            std::optional<absl::Duration> retry_after);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_BACKOFF_H_
