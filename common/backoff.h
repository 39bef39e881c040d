// Capped exponential backoff: the ceiling of the n-th consecutive retry delay,
// min(max, initial * 2^(n-1)). Shared by the broker (which draws its delay
// uniformly in [0, ceiling] and honours Retry-After: server/backoff.h) and the
// client library (ceiling times a factor in [0.5, 1]); each side keeps its own
// jitter. Pure.
#ifndef TREEZOR_COMMON_BACKOFF_H_
#define TREEZOR_COMMON_BACKOFF_H_

#include "absl/time/time.h"

namespace treezor {

struct BackoffSettings {
  absl::Duration initial;  // > 0
  absl::Duration max;      // >= initial
};

// `failures` counts consecutive failures including this one; values below 1
// count as 1.
absl::Duration BackoffCeiling(const BackoffSettings& settings, int failures);

}  // namespace treezor

#endif  // TREEZOR_COMMON_BACKOFF_H_
