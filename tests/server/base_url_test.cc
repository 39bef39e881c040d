#include "server/base_url.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

TEST(BaseUrlProblem, UsableUrlsHaveNone) {
  for (const char* good :
       {"https://acme.sandbox.treezor.co", "https://127.0.0.1:8443",
        "https://[::1]:8443", "https://acme.co/api/v1"}) {
    EXPECT_EQ(BaseUrlProblem(good), std::nullopt) << good;
  }
}

TEST(BaseUrlProblem, NamesTheUrlAndTheProblem) {
  EXPECT_THAT(BaseUrlProblem("http://acme.co"),
              Optional(HasSubstr("\"http://acme.co\" must start with "
                                 "\"https://\"")));
  EXPECT_THAT(BaseUrlProblem("https://acme.co/"),
              Optional(HasSubstr("must not end with \"/\"")));
  EXPECT_THAT(BaseUrlProblem("https://acme:0"), Optional(HasSubstr("bad port")));
  EXPECT_THAT(BaseUrlProblem("https://acme_co"),
              Optional(HasSubstr("malformed host")));
}

}  // namespace
}  // namespace treezor::broker
