#include "server/backoff.h"

#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

const BackoffSettings kSettings{absl::Seconds(1), absl::Seconds(60)};

TEST(Backoff, CeilingDoublesPerFailureUpToTheCap) {
  EXPECT_EQ(BackoffDelay(kSettings, 1, 1.0, std::nullopt), absl::Seconds(1));
  EXPECT_EQ(BackoffDelay(kSettings, 2, 1.0, std::nullopt), absl::Seconds(2));
  EXPECT_EQ(BackoffDelay(kSettings, 6, 1.0, std::nullopt), absl::Seconds(32));
  EXPECT_EQ(BackoffDelay(kSettings, 7, 1.0, std::nullopt), absl::Seconds(60));
  EXPECT_EQ(BackoffDelay(kSettings, 1000, 1.0, std::nullopt),
            absl::Seconds(60));
}

TEST(Backoff, FullJitterSpansZeroToTheCeiling) {
  EXPECT_EQ(BackoffDelay(kSettings, 3, 0.0, std::nullopt),
            absl::ZeroDuration());
  EXPECT_EQ(BackoffDelay(kSettings, 3, 0.5, std::nullopt), absl::Seconds(2));
}

TEST(Backoff, RetryAfterIsAFloor) {
  EXPECT_EQ(BackoffDelay(kSettings, 1, 0.5, absl::Seconds(30)),
            absl::Seconds(30));
  EXPECT_EQ(BackoffDelay(kSettings, 7, 1.0, absl::Seconds(5)),
            absl::Seconds(60));
}

TEST(Backoff, AbsurdRetryAfterIsCappedAtOneHour) {
  EXPECT_EQ(BackoffDelay(kSettings, 1, 0.0, absl::Hours(24 * 7)),
            absl::Hours(1));
}

}  // namespace
}  // namespace treezor::broker
