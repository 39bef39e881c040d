// ValidateConfig: the `tenants` section (config_validator_tenants.cc).
#include "server/config_validator.h"

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/config_fixture.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::treezor::broker::testing::ConfigFixture;
using ::treezor::broker::testing::kSecret;
using ::treezor::broker::testing::Lines;
using ::treezor::broker::testing::WriteFile;

class TenantValidationTest : public ConfigFixture {};

TEST_F(TenantValidationTest, TenantsRequired) {
  v1::BrokerConfig config = Good();
  config.clear_tenants();
  config.clear_callers();
  ExpectOnlyProblemAt(config, "tenants", "at least one");
}

TEST_F(TenantValidationTest, TenantNameRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_name();
  config.mutable_callers(0)->mutable_tenants()->RemoveLast();
  ExpectOnlyProblemAt(config, "tenants[1].name", "required");
}

TEST_F(TenantValidationTest, TenantNameCharacters) {
  for (const std::string& bad : std::vector<std::string>{
           "ac me", "acme/prod", "\xc3\xa9", std::string(65, 'a')}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_tenants(0)->set_name(bad);
    config.mutable_callers(0)->set_tenants(0, bad);
    config.mutable_callers(1)->set_tenants(0, bad);
    ExpectOnlyProblemAt(config, "tenants[0].name", "[A-Za-z0-9._-]");
  }
}

TEST_F(TenantValidationTest, TenantNamesUnique) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->set_name("acme");
  config.mutable_callers(0)->mutable_tenants()->RemoveLast();
  ExpectOnlyProblemAt(config, "tenants[1].name",
                      "\"acme\" is already the name of tenants[0]");
}

TEST_F(TenantValidationTest, BaseUrlRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->clear_base_url();
  ExpectOnlyProblemAt(config, "tenants[0].baseUrl", "required");
}

TEST_F(TenantValidationTest, BaseUrlMustBeHttps) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_base_url("http://acme.sandbox.treezor.co");
  ExpectOnlyProblemAt(config, "tenants[0].baseUrl",
                      "must start with \"https://\"");
}

TEST_F(TenantValidationTest, BaseUrlTrailingSlashIsRejected) {
  for (const char* bad : {"https://acme.sandbox.treezor.co/",
                          "https://acme.sandbox.treezor.co/v1/"}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_tenants(0)->set_base_url(bad);
    ExpectOnlyProblemAt(config, "tenants[0].baseUrl",
                        "must not end with \"/\"");
  }
}

TEST_F(TenantValidationTest, BaseUrlShape) {
  for (const char* bad :
       {"https://", "https://:443", "https://acme:0", "https://acme:x",
        "https://acme.co?x=1", "https://acme.co#f", "https://u:p@acme.co",
        "https://acme.co//v1", "https://acme_co", "https://[::1"}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_tenants(0)->set_base_url(bad);
    ExpectOnlyProblemAt(config, "tenants[0].baseUrl");
  }
  for (const char* good : {"https://127.0.0.1:8443", "https://[::1]:8443",
                           "https://[::1]", "https://acme.co/api/v1"}) {
    SCOPED_TRACE(good);
    v1::BrokerConfig config = Good();
    config.mutable_tenants(0)->set_base_url(good);
    EXPECT_OK(ValidateConfig(config));
  }
}

TEST_F(TenantValidationTest, GrantTypeMustBeKnown) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_grant_type("authorization_code");
  ExpectOnlyProblemAt(config, "tenants[0].grantType", "authorization_code");
}

TEST_F(TenantValidationTest, ClientIdRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_client_id();
  ExpectOnlyProblemAt(config, "tenants[1].clientId", "required");
}

TEST_F(TenantValidationTest, ClientSecretRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->clear_client_secret_file();
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretFile",
                      "required (or clientSecretEnv)");
}

TEST_F(TenantValidationTest, ClientSecretFileAndEnvAreExclusive) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_env("HOME");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv", "only one");
}

TEST_F(TenantValidationTest, ClientSecretFileMustBeReadable) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_file(dir_.File("missing"));
  ExpectOnlyProblemAt(
      config, "tenants[0].clientSecretFile",
      absl::StrCat("cannot read \"", dir_.File("missing"), "\""));
}

TEST_F(TenantValidationTest, ClientSecretFileOfOnlyNewlinesIsEmpty) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_file(dir_.File("newlines"));
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretFile",
                      absl::StrCat("\"", dir_.File("newlines"), "\" is empty"));
}

// The fetch path drops trailing whitespace, so a file of blanks would fail
// every token request: validation applies the same rule.
TEST_F(TenantValidationTest, ClientSecretFileOfOnlyWhitespaceIsEmpty) {
  WriteFile(dir_.File("blanks"), " \t  \r\n \n");
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_file(dir_.File("blanks"));
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretFile",
                      absl::StrCat("\"", dir_.File("blanks"), "\" is empty"));
}

TEST_F(TenantValidationTest, PasswordFileOfOnlyWhitespaceIsEmpty) {
  WriteFile(dir_.File("blanks"), "  \n");
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->set_password_file(dir_.File("blanks"));
  ExpectOnlyProblemAt(config, "tenants[1].passwordFile", "is empty");
}

TEST_F(TenantValidationTest, ClientSecretEnvOfOnlyWhitespaceIsEmpty) {
  ::setenv("TZB_CONFIG_TEST_BLANK", " \t\n", 1);
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_BLANK");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "environment variable TZB_CONFIG_TEST_BLANK is empty");
}

TEST_F(TenantValidationTest, ClientSecretEnvMustBeSet) {
  ::unsetenv("TZB_CONFIG_TEST_UNSET");
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_UNSET");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "environment variable TZB_CONFIG_TEST_UNSET is not set");
}

TEST_F(TenantValidationTest, ClientSecretEnvMustNotBeEmpty) {
  ::setenv("TZB_CONFIG_TEST_EMPTY", "", 1);
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_EMPTY");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "environment variable TZB_CONFIG_TEST_EMPTY is empty");
}

TEST_F(TenantValidationTest, ClientSecretEnvSetIsAccepted) {
  ::setenv("TZB_CONFIG_TEST_SECRET", kSecret, 1);
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_SECRET");
  EXPECT_OK(ValidateConfig(config));
}

TEST_F(TenantValidationTest, ClientSecretEnvMustBeAVariableName) {
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("1BAD=NAME");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "not an environment variable name");
}

TEST_F(TenantValidationTest, PasswordGrantRequiresUsernameFile) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_username_file();
  ExpectOnlyProblemAt(config, "tenants[1].usernameFile", "required");
}

TEST_F(TenantValidationTest, PasswordGrantRequiresReadablePasswordFile) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->set_password_file(dir_.File("empty"));
  ExpectOnlyProblemAt(config, "tenants[1].passwordFile", "is empty");
}

TEST_F(TenantValidationTest, UsernameFileRejectedForClientCredentials) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_username_file(dir_.File("beta.user"));
  ExpectOnlyProblemAt(config, "tenants[0].usernameFile",
                      "only for grantType \"password\"");
}

TEST_F(TenantValidationTest, PasswordFileRejectedForExplicitClientCredentials) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_grant_type("client_credentials");
  config.mutable_tenants(0)->set_password_file(dir_.File("beta.password"));
  ExpectOnlyProblemAt(config, "tenants[0].passwordFile",
                      "only for grantType \"password\"");
}

TEST_F(TenantValidationTest, DefaultScopesMustBeValid) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->add_default_scopes("read all");
  ExpectOnlyProblemAt(config, "tenants[1].defaultScopes[0]");
}

TEST_F(TenantValidationTest, AllowedScopesMustBeValid) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->add_allowed_scopes("");
  ExpectOnlyProblemAt(config, "tenants[0].allowedScopes[3]");
}

TEST_F(TenantValidationTest, DefaultScopesMustBeAllowed) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->add_default_scopes("keys");
  ExpectOnlyProblemAt(config, "tenants[0].defaultScopes[1]",
                      "\"keys\" is not in allowedScopes");
}

TEST_F(TenantValidationTest, UpstreamTlsCertFileRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_upstream_tls();
  absl::Status status = ValidateConfig(config);
  EXPECT_THAT(Lines(status),
              ElementsAre("config: tenants[1].upstreamTls.certFile: required "
                          "(Treezor requires mutual TLS)",
                          "config: tenants[1].upstreamTls.keyFile: required "
                          "(Treezor requires mutual TLS)"));
}

TEST_F(TenantValidationTest, UpstreamTlsKeyFileRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->mutable_upstream_tls()->clear_key_file();
  ExpectOnlyProblemAt(config, "tenants[0].upstreamTls.keyFile", "required");
}

TEST_F(TenantValidationTest, UpstreamTlsCaFileMustBeReadableIfSet) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->mutable_upstream_tls()->set_ca_file(
      dir_.File("missing-ca.crt"));
  ExpectOnlyProblemAt(config, "tenants[0].upstreamTls.caFile", "cannot read");
}

TEST_F(TenantValidationTest, RequestEncodingMustBeKnown) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_request_encoding("xml");
  ExpectOnlyProblemAt(config, "tenants[0].requestEncoding", "\"xml\"");
}

// --- Files: absolute paths and permissions (issue 10 item 9) -------------

TEST_F(TenantValidationTest, SecretFilePathsMustBeAbsolute) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_file("acme.secret");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretFile",
                      "\"acme.secret\" must be an absolute path");
  config = Good();
  config.mutable_tenants(1)->set_username_file("./beta.user");
  ExpectOnlyProblemAt(config, "tenants[1].usernameFile",
                      "\"./beta.user\" must be an absolute path");
  config = Good();
  config.mutable_tenants(1)->set_password_file("~/beta.password");
  ExpectOnlyProblemAt(config, "tenants[1].passwordFile",
                      "must be an absolute path");
}

TEST_F(TenantValidationTest, UpstreamTlsPathsMustBeAbsolute) {
  using Setter = void (v1::UpstreamTls::*)(const std::string&);
  for (const auto& [setter, path] :
       std::vector<std::pair<Setter, std::string>>{
           {&v1::UpstreamTls::set_cert_file, "tenants[0].upstreamTls.certFile"},
           {&v1::UpstreamTls::set_key_file, "tenants[0].upstreamTls.keyFile"},
           {&v1::UpstreamTls::set_ca_file, "tenants[0].upstreamTls.caFile"}}) {
    SCOPED_TRACE(path);
    v1::BrokerConfig config = Good();
    (config.mutable_tenants(0)->mutable_upstream_tls()->*setter)("treezor.pem");
    ExpectOnlyProblemAt(config, path, "must be an absolute path");
  }
}

TEST_F(TenantValidationTest, SecretFileWritableByGroupIsRefused) {
  Chmod("acme.secret", 0660);
  ExpectOnlyProblemAt(Good(), "tenants[0].clientSecretFile",
                      absl::StrCat("\"", dir_.File("acme.secret"),
                                   "\" may be written by its group or others "
                                   "(mode 0660)"));
}

TEST_F(TenantValidationTest, PasswordFilesWritableByOthersAreRefused) {
  Chmod("beta.user", 0602);
  Chmod("beta.password", 0666);
  absl::Status status = ValidateConfig(Good());
  EXPECT_THAT(Lines(status),
              ElementsAre(StartsWith("config: tenants[1].usernameFile: "),
                          StartsWith("config: tenants[1].passwordFile: ")));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr(kSecret)));
}

TEST_F(TenantValidationTest, UpstreamKeyWritableByGroupIsRefused) {
  Chmod("acme.key", 0620);
  ExpectOnlyProblemAt(Good(), "tenants[0].upstreamTls.keyFile", "(mode 0620)");
}

TEST_F(TenantValidationTest, UpstreamCaWritableByOthersIsRefused) {
  // Whoever can write it can make the broker send its secret to them.
  Chmod("treezor-ca.crt", 0646);
  ExpectOnlyProblemAt(Good(), "tenants[0].upstreamTls.caFile", "(mode 0646)");
}

TEST_F(TenantValidationTest, SecretFilesReadableByOthersAreWarnings) {
  Chmod("acme.secret", 0644);
  Chmod("beta.password", 0604);
  Chmod("beta.key", 0444);
  ExpectWarningsAt(Good(),
                   {"tenants[0].clientSecretFile", "tenants[1].passwordFile",
                    "tenants[1].upstreamTls.keyFile"},
                   "is readable by others");
}

TEST_F(TenantValidationTest, SecretFromTheEnvironmentHasNoFileToCheck) {
  ::setenv("TZB_CONFIG_TEST_SECRET", kSecret, 1);
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_SECRET");
  ExpectWarningsAt(config, {});
}

// --- allowedScopes without defaultScopes (issue 10 item 1) --------------

// Accepted (today's configs must keep starting), but the operator is told
// that scope-less requests are refused and nothing is fetched at start-up.
TEST_F(TenantValidationTest, AllowedScopesWithoutDefaultScopesIsAWarning) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->clear_default_scopes();
  ExpectWarningsAt(config, {"tenants[0].defaultScopes"},
                   "tenant \"acme\" has allowedScopes but no defaultScopes: "
                   "requests naming no scope are refused (PERMISSION_DENIED) "
                   "and nothing is fetched for it at start-up");
}

TEST_F(TenantValidationTest, NoWarningWithDefaultScopesOrWithoutAllowedScopes) {
  v1::BrokerConfig config = Good();  // acme: both; beta.prod: neither
  ExpectWarningsAt(config, {});
  config.mutable_tenants(1)->add_default_scopes("read_only");
  ExpectWarningsAt(config, {});
}

}  // namespace
}  // namespace treezor::broker
