#include "common/backoff.h"

#include <algorithm>

namespace treezor {

absl::Duration BackoffCeiling(const BackoffSettings& settings, int failures) {
  absl::Duration ceiling = settings.initial;
  for (int i = 1; i < failures && ceiling < settings.max; ++i) ceiling *= 2;
  return std::min(ceiling, settings.max);
}

}  // namespace treezor
