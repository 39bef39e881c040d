#include "server/secret.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

constexpr char kSecret[] = "s3cr3t-value-never-printed";

TEST(Secret, MovingLeavesTheSourceEmpty) {
  Secret a(kSecret);
  Secret b(std::move(a));
  EXPECT_EQ(b.view(), kSecret);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract
  Secret c;
  c = std::move(b);
  EXPECT_EQ(c.view(), kSecret);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(Secret, AppendGrowsAcrossManyReallocations) {
  Secret s;
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string chunk = absl::StrCat(i, ",");
    s.Append(chunk);
    expected += chunk;
  }
  EXPECT_EQ(s.view(), expected);
}

}  // namespace
}  // namespace treezor::broker
