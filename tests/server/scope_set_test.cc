#include "server/scope_set.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::StatusIs;

TEST(ScopeSet, SortsAndDeduplicates) {
  ScopeSet s = ScopeSet::FromList({"read_all", "admin", "admin"});
  EXPECT_THAT(s.scopes(), ElementsAre("admin", "read_all"));
  EXPECT_EQ(s.ToOAuthString(), "admin read_all");
}

TEST(ScopeSet, OrderAndDuplicatesDoNotChangeIdentity) {
  EXPECT_EQ(ScopeSet::FromList({"read_all", "admin"}),
            ScopeSet::FromList({"admin", "read_all", "admin"}));
  EXPECT_NE(ScopeSet::FromList({"admin"}), ScopeSet::FromList({"read_write"}));
}

TEST(ScopeSet, SubsetAndContains) {
  ScopeSet small = ScopeSet::FromList({"admin"});
  ScopeSet big = ScopeSet::FromList({"admin", "read_all"});
  EXPECT_TRUE(small.IsSubsetOf(big));
  EXPECT_FALSE(big.IsSubsetOf(small));
  EXPECT_TRUE(ScopeSet().IsSubsetOf(small));
  EXPECT_TRUE(big.Contains("read_all"));
  EXPECT_FALSE(big.Contains("keys"));
}

TEST(ValidateScope, AcceptsTreezorScopes) {
  for (const char* s : {"read_only", "read_write", "read_all", "admin", "keys",
                        "legal", "support_user_management", "trz:sca"}) {
    EXPECT_OK(ValidateScope(s, "scopes[0]"));
  }
}

TEST(ValidateScope, RejectsEmptySpacesAndOverlongScopesNamingTheField) {
  EXPECT_THAT(ValidateScope("", "scopes[1]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("scopes[1]")));
  EXPECT_THAT(ValidateScope("admin read_all", "scopes[2]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("scopes[2]")));
  EXPECT_THAT(ValidateScope(std::string(65, 'a'), "scopes[0]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("64")));
}

}  // namespace
}  // namespace treezor::broker
