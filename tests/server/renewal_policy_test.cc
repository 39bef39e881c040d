#include "server/renewal_policy.h"

#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

Token TokenWithLifetime(absl::Duration lifetime) {
  Token t;
  t.obtained_at = absl::FromUnixSeconds(1'800'000'000);
  t.expires_at = t.obtained_at + lifetime;
  return t;
}

TEST(RenewalPolicy, RenewsWhenAQuarterOfTheLifetimeRemains) {
  const Token t = TokenWithLifetime(absl::Hours(1));
  EXPECT_EQ(RenewAt({}, t, 0.0), t.obtained_at + absl::Minutes(45));
}

TEST(RenewalPolicy, JitterStaysWithinFivePercentOfTheLifetime) {
  const Token t = TokenWithLifetime(absl::Hours(1));
  EXPECT_EQ(RenewAt({}, t, -1.0), t.obtained_at + absl::Minutes(42));
  EXPECT_EQ(RenewAt({}, t, 1.0), t.obtained_at + absl::Minutes(48));
  for (double u = -1.0; u <= 1.0; u += 0.125) {
    const absl::Time at = RenewAt({}, t, u);
    EXPECT_GE(at, t.obtained_at + absl::Minutes(42));
    EXPECT_LE(at, t.obtained_at + absl::Minutes(48));
  }
  // Out-of-range samples are clamped, never beyond the bounds.
  EXPECT_EQ(RenewAt({}, t, 7.0), t.obtained_at + absl::Minutes(48));
}

TEST(RenewalPolicy, SafetyMarginIsTheSmallerOfSixtySecondsAndTenPercent) {
  EXPECT_EQ(SafetyMargin({}, absl::Hours(1)), absl::Seconds(60));
  EXPECT_EQ(SafetyMargin({}, absl::Seconds(300)), absl::Seconds(30));
  const Token t = TokenWithLifetime(absl::Hours(1));
  EXPECT_EQ(UsableUntil({}, t), t.expires_at - absl::Seconds(60));
}

TEST(RenewalPolicy, RenewalNeverFallsAfterTheUsableTime) {
  RenewalSettings s;
  s.renew_remaining_fraction = 0.05;  // would renew 3 min before expiry
  s.jitter_fraction = 0.04;
  s.min_remaining = absl::Minutes(5);
  const Token t = TokenWithLifetime(absl::Hours(1));
  EXPECT_LE(RenewAt(s, t, 1.0), UsableUntil(s, t));
}

TEST(RenewalPolicy, ExpiredOnArrivalRenewsAtOnce) {
  const Token t = TokenWithLifetime(absl::ZeroDuration());
  EXPECT_EQ(RenewAt({}, t, 0.5), t.obtained_at);
}

}  // namespace
}  // namespace treezor::broker
