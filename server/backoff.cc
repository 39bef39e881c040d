#include "server/backoff.h"

#include <algorithm>

namespace treezor::broker {

constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

absl::Duration BackoffDelay(const BackoffSettings& settings, int failures,
                            double unit,
                            std::optional<absl::Duration> retry_after) {
  absl::Duration delay =
      BackoffCeiling(settings, failures) * std::clamp(unit, 0.0, 1.0);
  if (retry_after.has_value()) {
    // Honoured, but a nonsensical value must not park an entry for days.
    delay = std::max(delay, std::clamp(*retry_after, absl::ZeroDuration(),
                                       kMaxRetryAfter));
  }
  return delay;
}

}  // namespace treezor::broker
