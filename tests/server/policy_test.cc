#include "server/policy.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::treezor::broker::testing::StatusIs;

using Ids = std::vector<std::string>;
using Scopes = std::vector<std::string>;

constexpr absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;

// Policy only reads names and scopes, so the config needs no files.
v1::BrokerConfig TestConfig() {
  absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(R"json({
    "tenants": [
      {"name": "acme", "defaultScopes": ["read_write"],
       "allowedScopes": ["read_only", "read_write", "admin", "read_all"]},
      {"name": "beta", "defaultScopes": ["read_all", "admin"]},
      {"name": "gamma"}
    ],
    "callers": [
      {"identity": "spiffe://corp/payments", "tenants": ["acme", "beta"]},
      {"identity": "reporting", "tenants": ["acme"], "scopes": ["read_only"]},
      {"identity": "reporting.svc.cluster.local", "tenants": ["beta"],
       "scopes": ["read_all"]},
      {"identity": "spiffe://corp/reporting", "tenants": ["acme"],
       "scopes": ["read_all"]},
      {"identity": "limited", "tenants": ["acme"], "scopes": ["read_only"]}
    ],
    "admins": [{"identity": "spiffe://corp/ops"}]
  })json");
  EXPECT_OK(config);
  return config.value_or(v1::BrokerConfig());
}

Policy TestPolicy() {
  absl::StatusOr<Policy> policy = Policy::Create(TestConfig());
  EXPECT_OK(policy);
  return *std::move(policy);
}

TEST(Policy, UnknownAndForbiddenTenantsGiveIdenticalErrors) {
  const Policy policy = TestPolicy();
  // "gamma" exists but "reporting" may not use it; "delta" does not exist.
  EXPECT_THAT(
      policy.Authorize(Ids{"reporting"}, "gamma", {}),
      StatusIs(kDenied, "caller may not get tokens for tenant \"gamma\""));
  EXPECT_THAT(
      policy.Authorize(Ids{"reporting"}, "delta", {}),
      StatusIs(kDenied, "caller may not get tokens for tenant \"delta\""));
}

TEST(Policy, UnknownTenantErrorDoesNotDependOnTheTenantExisting) {
  // Two configs that differ only in whether tenant "gamma" exists give the
  // same answer, byte for byte, to a caller not allowed on it.
  v1::BrokerConfig with_gamma = TestConfig();
  v1::BrokerConfig without_gamma = TestConfig();
  without_gamma.mutable_tenants()->RemoveLast();
  ASSERT_OK_AND_ASSIGN(Policy a, Policy::Create(with_gamma));
  ASSERT_OK_AND_ASSIGN(Policy b, Policy::Create(without_gamma));
  absl::StatusOr<ScopeSet> from_a = a.Authorize(Ids{"limited"}, "gamma", {});
  absl::StatusOr<ScopeSet> from_b = b.Authorize(Ids{"limited"}, "gamma", {});
  EXPECT_EQ(from_a.status(), from_b.status());
  EXPECT_THAT(from_a, StatusIs(kDenied, ::testing::_));
}

TEST(Policy, CallerWithoutIdentityIsDenied) {
  EXPECT_THAT(
      TestPolicy().Authorize(Ids{}, "acme", {}),
      StatusIs(kDenied, HasSubstr("caller certificate has no identity")));
}

TEST(Policy, UnlistedCallerIsDenied) {
  EXPECT_THAT(TestPolicy().Authorize(Ids{"spiffe://corp/unknown"}, "acme", {}),
              StatusIs(kDenied,
                       "no configured caller matches this certificate "
                       "(identities: \"spiffe://corp/unknown\")"));
}

TEST(Policy, ScopesAreCanonicalised) {
  ASSERT_OK_AND_ASSIGN(
      ScopeSet scopes,
      TestPolicy().Authorize(Ids{"spiffe://corp/payments"}, "acme",
                             Scopes{"read_write", "admin", "read_write"}));
  EXPECT_EQ(scopes, ScopeSet::FromList({"admin", "read_write"}));
  EXPECT_EQ(scopes.ToOAuthString(), "admin read_write");
}

TEST(Policy, EmptyRequestGetsTheTenantsDefaultScopes) {
  const Policy policy = TestPolicy();
  ASSERT_OK_AND_ASSIGN(
      ScopeSet acme,
      policy.Authorize(Ids{"spiffe://corp/payments"}, "acme", {}));
  EXPECT_EQ(acme, ScopeSet::FromList({"read_write"}));
  ASSERT_OK_AND_ASSIGN(
      ScopeSet beta,
      policy.Authorize(Ids{"spiffe://corp/payments"}, "beta", {}));
  EXPECT_EQ(beta, ScopeSet::FromList({"admin", "read_all"}));
}

TEST(Policy, TenantAllowedScopesLimitRequests) {
  EXPECT_THAT(
      TestPolicy().Authorize(Ids{"spiffe://corp/payments"}, "acme",
                             Scopes{"read_only", "keys"}),
      StatusIs(kDenied, "scope \"keys\" is not allowed on tenant \"acme\""));
}

TEST(Policy, TenantWithoutAllowedScopesAllowsAny) {
  ASSERT_OK_AND_ASSIGN(ScopeSet scopes,
                       TestPolicy().Authorize(Ids{"spiffe://corp/payments"},
                                              "beta", Scopes{"keys", "legal"}));
  EXPECT_EQ(scopes, ScopeSet::FromList({"keys", "legal"}));
}

TEST(Policy, CallerScopesLimitRequests) {
  const Policy policy = TestPolicy();
  EXPECT_OK(policy.Authorize(Ids{"limited"}, "acme", Scopes{"read_only"}));
  EXPECT_THAT(policy.Authorize(Ids{"limited"}, "acme", Scopes{"read_write"}),
              StatusIs(kDenied,
                       "caller may not request scope \"read_write\" "
                       "on tenant \"acme\""));
}

TEST(Policy, CallerScopesAlsoLimitTheDefaultScopes) {
  // acme's default is read_write, which "limited" may not have.
  EXPECT_THAT(TestPolicy().Authorize(Ids{"limited"}, "acme", {}),
              StatusIs(kDenied, HasSubstr("\"read_write\"")));
}

TEST(Policy, CallerWithoutScopesGetsWhateverTheTenantAllows) {
  EXPECT_OK(TestPolicy().Authorize(Ids{"spiffe://corp/payments"}, "acme",
                                   Scopes{"admin", "read_all", "read_only"}));
}

TEST(Policy, MatchingEntriesAddUp) {
  // A certificate with a URI SAN, a DNS SAN and a CN, each listed.
  const Policy policy = TestPolicy();
  const Ids ids = {"spiffe://corp/reporting", "reporting.svc.cluster.local",
                   "reporting"};
  // acme: read_all (URI SAN entry) + read_only (CN entry).
  ASSERT_OK_AND_ASSIGN(
      ScopeSet acme,
      policy.Authorize(ids, "acme", Scopes{"read_only", "read_all"}));
  EXPECT_EQ(acme, ScopeSet::FromList({"read_all", "read_only"}));
  // beta: only through the DNS SAN entry.
  EXPECT_OK(policy.Authorize(ids, "beta", Scopes{"read_all"}));
}

TEST(Policy, GrantsAddUpPerTenantOnly) {
  // The DNS SAN entry's read_all is for beta, not acme: "reporting" alone may
  // not have it on acme, and the pair may not have read_write on acme.
  const Policy policy = TestPolicy();
  const Ids ids = {"reporting.svc.cluster.local", "reporting"};
  EXPECT_THAT(policy.Authorize(ids, "acme", Scopes{"read_all"}),
              StatusIs(kDenied, HasSubstr("\"read_all\"")));
  EXPECT_THAT(policy.Authorize(ids, "beta", Scopes{"read_only"}),
              StatusIs(kDenied, HasSubstr("\"read_only\"")));
}

TEST(Policy, UnlistedIdentitiesBesideAListedOneAreIgnored) {
  EXPECT_OK(TestPolicy().Authorize(Ids{"nobody", "limited"}, "acme",
                                   Scopes{"read_only"}));
}

TEST(Policy, MalformedScopeIsInvalidArgumentNamingItsIndex) {
  EXPECT_THAT(
      TestPolicy().Authorize(Ids{"spiffe://corp/payments"}, "beta",
                             Scopes{"admin", "read_all", "read all"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scopes[2]: ")));
}

TEST(Policy, EchoedTenantIsEscapedAndShortened) {
  absl::StatusOr<ScopeSet> result =
      TestPolicy().Authorize(Ids{"limited"}, std::string(500, 'x') + "\n", {});
  ASSERT_THAT(result, StatusIs(kDenied, HasSubstr("\"...")));
  EXPECT_LT(result.status().message().size(), 200u);
  EXPECT_THAT(
      TestPolicy().Authorize(Ids{"limited"}, "a\"\nb", {}),
      StatusIs(kDenied, "caller may not get tokens for tenant \"a\\\"\\nb\""));
}

TEST(Policy, Admins) {
  const Policy policy = TestPolicy();
  EXPECT_TRUE(policy.IsAdmin(Ids{"cn", "spiffe://corp/ops"}));
  EXPECT_FALSE(policy.IsAdmin(Ids{"spiffe://corp/payments"}));
  EXPECT_FALSE(policy.IsAdmin(Ids{}));
}

TEST(Policy, AdminsAreNotCallers) {
  EXPECT_THAT(TestPolicy().Authorize(Ids{"spiffe://corp/ops"}, "acme", {}),
              StatusIs(kDenied, HasSubstr("no configured caller")));
}

TEST(Policy, DefaultScopeSetsInConfigOrder) {
  EXPECT_THAT(
      TestPolicy().DefaultScopeSets(),
      ElementsAre(Pair("acme", ScopeSet::FromList({"read_write"})),
                  Pair("beta", ScopeSet::FromList({"admin", "read_all"})),
                  Pair("gamma", ScopeSet())));
}

TEST(Policy, CreateRefusesACallerNamingAnUnknownTenant) {
  v1::BrokerConfig config = TestConfig();
  config.mutable_callers(0)->add_tenants("delta");
  EXPECT_THAT(Policy::Create(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("callers[0].tenants")));
}

TEST(Policy, SharedAsConstPointer) {
  ASSERT_OK_AND_ASSIGN(Policy policy, Policy::Create(TestConfig()));
  const std::shared_ptr<const Policy> shared =
      std::make_shared<const Policy>(std::move(policy));
  EXPECT_OK(shared->Authorize(Ids{"limited"}, "acme", Scopes{"read_only"}));
}

}  // namespace
}  // namespace treezor::broker
