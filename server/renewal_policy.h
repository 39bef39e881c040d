// When to renew a token and how long it may still be handed out: pure
// functions of the token's lifetime and the configured fractions, so the
// rules are tested without a clock.
//
// For a token obtained at O expiring at E (lifetime L = E - O):
//  - it is *usable* until E - min(min_remaining, min_remaining_fraction * L):
//    nobody is handed a token about to die in their hands;
//  - it is *due for renewal* at E - renew_remaining_fraction * L, moved by a
//    uniform jitter in ±jitter_fraction * L so entries created together do not
//    renew together. The jitter never pushes renewal past the usable time.
#ifndef TREEZOR_BROKER_SERVER_RENEWAL_POLICY_H_
#define TREEZOR_BROKER_SERVER_RENEWAL_POLICY_H_

#include "absl/time/time.h"
#include "server/settings.h"
#include "server/token.h"

namespace treezor::broker {

// The safety margin: a token is not handed out when less than this is left.
absl::Duration SafetyMargin(const RenewalSettings& s, absl::Duration lifetime);

// Last instant at which `token` may be handed out.
absl::Time UsableUntil(const RenewalSettings& s, const Token& token);

// When to renew `token`. `jitter_unit` is a uniform sample in [-1, 1] (the
// caller owns the random source, so tests choose it).
absl::Time RenewAt(const RenewalSettings& s, const Token& token,
                   double jitter_unit);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_RENEWAL_POLICY_H_
