#include "server/quote.h"

#include <string>

#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

TEST(Quote, QuotesAndEscapes) {
  EXPECT_EQ(Quote("acme"), "\"acme\"");
  EXPECT_EQ(Quote("a\"b\n"), "\"a\\\"b\\n\"");
  EXPECT_EQ(Quote(""), "\"\"");
}

TEST(Quote, WithoutACapNothingIsCut) {
  const std::string long_name(500, 'x');
  EXPECT_EQ(Quote(long_name), "\"" + long_name + "\"");
}

TEST(Quote, CapCutsWhatIsLongerAndSaysSo) {
  EXPECT_EQ(Quote("abcdef", 6), "\"abcdef\"");
  EXPECT_EQ(Quote("abcdefg", 6), "\"abcdef\"...");
  // The cap counts bytes of the input, before escaping.
  EXPECT_EQ(Quote("\n\n\n", 2), "\"\\n\\n\"...");
}

}  // namespace
}  // namespace treezor::broker
