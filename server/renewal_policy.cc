#include "server/renewal_policy.h"

#include <algorithm>

namespace treezor::broker {

absl::Duration SafetyMargin(const RenewalSettings& s, absl::Duration lifetime) {
  if (lifetime <= absl::ZeroDuration()) return absl::ZeroDuration();
  return std::min(s.min_remaining, lifetime * s.min_remaining_fraction);
}

absl::Time UsableUntil(const RenewalSettings& s, const Token& token) {
  return token.expires_at - SafetyMargin(s, token.lifetime());
}

absl::Time RenewAt(const RenewalSettings& s, const Token& token,
                   double jitter_unit) {
  const absl::Duration lifetime = token.lifetime();
  if (lifetime <= absl::ZeroDuration()) return token.obtained_at;
  jitter_unit = std::clamp(jitter_unit, -1.0, 1.0);
  absl::Time at = token.expires_at - lifetime * s.renew_remaining_fraction +
                  lifetime * (s.jitter_fraction * jitter_unit);
  // Never later than the moment the token stops being usable, never before
  // it was obtained.
  at = std::min(at, UsableUntil(s, token));
  return std::max(at, token.obtained_at);
}

}  // namespace treezor::broker
