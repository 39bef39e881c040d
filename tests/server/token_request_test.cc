#include "server/token_request.h"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::treezor::broker::testing::StatusIs;
using ::treezor::broker::testing::TempDir;

std::vector<std::string> Names(const Params& params) {
  std::vector<std::string> names;
  for (const Param& p : params) names.push_back(p.name);
  return names;
}

std::string Value(const Params& params, const std::string& name) {
  for (const Param& p : params) {
    if (p.name == name) return std::string(p.value.view());
  }
  return "<absent>";
}

class BuildTokenRequestTest : public ::testing::Test {
 protected:
  std::string File(const std::string& name, const std::string& content) {
    const std::string path = dir_.File(name);
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(content.c_str(), f);
    std::fclose(f);
    return path;
  }

  v1::Tenant Tenant() {
    v1::Tenant tenant;
    tenant.set_name("acme");
    tenant.set_client_id("1234");
    tenant.set_client_secret_file(File("secret", "the-client-secret\n"));
    return tenant;
  }

  v1::Tenant PasswordTenant() {
    v1::Tenant tenant = Tenant();
    tenant.set_grant_type("password");
    tenant.set_username_file(File("user", "alice\n"));
    tenant.set_password_file(File("password", "the-password\n"));
    return tenant;
  }

  static FetchRequest Fetch(std::string refresh_token = "") {
    return {.tenant = "acme",
            .scopes = ScopeSet::FromList({"read_all", "admin"}),
            .refresh_token = std::move(refresh_token)};
  }

  TempDir dir_;
};

TEST_F(BuildTokenRequestTest, ClientCredentialsByDefault) {
  ASSERT_OK_AND_ASSIGN(TokenRequest request,
                       BuildTokenRequest(Tenant(), Fetch()));
  EXPECT_EQ(request.grant, Grant::kClientCredentials);
  EXPECT_THAT(Names(request.params),
              ElementsAre("grant_type", "client_id", "client_secret", "scope"));
  EXPECT_EQ(Value(request.params, "grant_type"), "client_credentials");
  EXPECT_EQ(Value(request.params, "client_id"), "1234");
  EXPECT_EQ(Value(request.params, "client_secret"), "the-client-secret");
  EXPECT_EQ(Value(request.params, "scope"), "admin read_all");
  EXPECT_EQ(request.redactor.Redact("the-client-secret"), "[redacted]");
}

TEST_F(BuildTokenRequestTest, NoScopeParameterWithoutScopes) {
  ASSERT_OK_AND_ASSIGN(TokenRequest request,
                       BuildTokenRequest(Tenant(), {.tenant = "acme"}));
  EXPECT_THAT(Names(request.params),
              ElementsAre("grant_type", "client_id", "client_secret"));
}

TEST_F(BuildTokenRequestTest, PasswordGrantSendsTheUserCredentials) {
  ASSERT_OK_AND_ASSIGN(TokenRequest request,
                       BuildTokenRequest(PasswordTenant(), Fetch()));
  EXPECT_EQ(request.grant, Grant::kPassword);
  EXPECT_THAT(Names(request.params),
              ElementsAre("grant_type", "client_id", "client_secret",
                          "username", "password", "scope"));
  EXPECT_EQ(Value(request.params, "username"), "alice");
  EXPECT_EQ(Value(request.params, "password"), "the-password");
  EXPECT_EQ(request.redactor.Redact("the-password"), "[redacted]");
}

TEST_F(BuildTokenRequestTest, RefreshTokenSelectsTheRefreshGrantWithoutSecret) {
  ASSERT_OK_AND_ASSIGN(TokenRequest request,
                       BuildTokenRequest(PasswordTenant(), Fetch("rt-123456")));
  EXPECT_EQ(request.grant, Grant::kRefreshToken);
  EXPECT_THAT(Names(request.params),
              ElementsAre("grant_type", "client_id", "refresh_token", "scope"));
  EXPECT_EQ(Value(request.params, "grant_type"), "refresh_token");
  EXPECT_EQ(Value(request.params, "refresh_token"), "rt-123456");
  EXPECT_EQ(request.redactor.Redact("rt-123456"), "[redacted]");
}

TEST_F(BuildTokenRequestTest, SecretIsReadAtEveryCall) {
  v1::Tenant tenant = Tenant();
  ASSERT_OK_AND_ASSIGN(TokenRequest first, BuildTokenRequest(tenant, Fetch()));
  File("secret", "rotated\n");
  ASSERT_OK_AND_ASSIGN(TokenRequest second, BuildTokenRequest(tenant, Fetch()));
  EXPECT_EQ(Value(first.params, "client_secret"), "the-client-secret");
  EXPECT_EQ(Value(second.params, "client_secret"), "rotated");
}

TEST_F(BuildTokenRequestTest, ErrorsNameTheTenantAndTheField) {
  v1::Tenant implicit = Tenant();
  implicit.set_grant_type("implicit");
  EXPECT_THAT(BuildTokenRequest(implicit, Fetch()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: unsupported grantType \"implicit\""));
  v1::Tenant no_secret = Tenant();
  no_secret.clear_client_secret_file();
  EXPECT_THAT(BuildTokenRequest(no_secret, Fetch()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: clientSecretFile: required (or "
                       "clientSecretEnv)"));
  v1::Tenant no_password = PasswordTenant();
  no_password.clear_password_file();
  EXPECT_THAT(BuildTokenRequest(no_password, Fetch()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: passwordFile: required"));
}

}  // namespace
}  // namespace treezor::broker
