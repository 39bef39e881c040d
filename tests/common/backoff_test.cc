#include "common/backoff.h"

#include "gtest/gtest.h"

namespace treezor {
namespace {

const BackoffSettings kSettings{absl::Seconds(1), absl::Seconds(60)};

TEST(BackoffCeiling, DoublesPerFailureUpToTheCap) {
  EXPECT_EQ(BackoffCeiling(kSettings, 1), absl::Seconds(1));
  EXPECT_EQ(BackoffCeiling(kSettings, 2), absl::Seconds(2));
  EXPECT_EQ(BackoffCeiling(kSettings, 6), absl::Seconds(32));
  EXPECT_EQ(BackoffCeiling(kSettings, 7), absl::Seconds(60));
  EXPECT_EQ(BackoffCeiling(kSettings, 1000), absl::Seconds(60));
}

TEST(BackoffCeiling, FewerThanOneFailureCountsAsOne) {
  EXPECT_EQ(BackoffCeiling(kSettings, 0), absl::Seconds(1));
  EXPECT_EQ(BackoffCeiling(kSettings, -3), absl::Seconds(1));
}

TEST(BackoffCeiling, InitialAboveTheCapIsCapped) {
  EXPECT_EQ(BackoffCeiling({absl::Seconds(90), absl::Seconds(60)}, 1),
            absl::Seconds(60));
}

}  // namespace
}  // namespace treezor
