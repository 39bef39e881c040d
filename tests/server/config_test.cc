#include "server/config.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/substitute.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::treezor::broker::testing::StatusIs;
using ::treezor::broker::testing::TempDir;

constexpr char kSecret[] = "s3cr3t-value-never-printed";

std::vector<std::string> Lines(const absl::Status& status) {
  return absl::StrSplit(status.message(), '\n');
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

google::protobuf::Duration Dur(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

// A complete, valid configuration whose files live in a temp dir; each test
// breaks one thing and checks that the error names that field.
class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() {
    for (const char* name :
         {"server.crt", "server.key", "clients-ca.crt", "acme.crt", "acme.key",
          "treezor-ca.crt", "beta.crt", "beta.key"}) {
      WriteFile(dir_.File(name), "-----BEGIN PEM-----\n");
    }
    WriteFile(dir_.File("acme.secret"), absl::StrCat(kSecret, "\n"));
    WriteFile(dir_.File("beta.secret"), kSecret);
    WriteFile(dir_.File("beta.user"), kSecret);
    WriteFile(dir_.File("beta.password"), kSecret);
    WriteFile(dir_.File("empty"), "");
    WriteFile(dir_.File("newlines"), "\n\r\n");
  }

  std::string GoodJson() const {
    return absl::Substitute(R"json({
      "listenAddress": "0.0.0.0:8443",
      "healthListenAddress": "0.0.0.0:8081",
      "metricsListenAddress": "[::]:9090",
      "serverTls": {
        "certFile": "$0/server.crt",
        "keyFile": "$0/server.key",
        "clientCaFile": "$0/clients-ca.crt",
        "refreshInterval": "30s"
      },
      "tenants": [
        {
          "name": "acme",
          "baseUrl": "https://acme.sandbox.treezor.co",
          "clientId": "123456",
          "clientSecretFile": "$0/acme.secret",
          "defaultScopes": ["read_write"],
          "allowedScopes": ["read_only", "read_write", "admin"],
          "upstreamTls": {
            "certFile": "$0/acme.crt",
            "keyFile": "$0/acme.key",
            "caFile": "$0/treezor-ca.crt"
          }
        },
        {
          "name": "beta.prod",
          "baseUrl": "https://beta.api.treezor.co:8443/v1",
          "grantType": "password",
          "clientId": "42",
          "clientSecretFile": "$0/beta.secret",
          "usernameFile": "$0/beta.user",
          "passwordFile": "$0/beta.password",
          "upstreamTls": {"certFile": "$0/beta.crt", "keyFile": "$0/beta.key"},
          "requestEncoding": "multipart"
        }
      ],
      "callers": [
        {"identity": "spiffe://corp/payments", "tenants": ["acme", "beta.prod"]},
        {"identity": "reporting", "tenants": ["acme"], "scopes": ["read_only"]}
      ],
      "admins": [{"identity": "spiffe://corp/ops"}],
      "renewal": {
        "renewRemainingFraction": 0.3,
        "jitterFraction": 0.1,
        "minRemaining": "30s",
        "minRemainingFraction": 0.2,
        "idleTimeout": "7200s",
        "initialBackoff": "0.5s",
        "maxBackoff": "30s",
        "refusedBackoff": "120s",
        "refreshTokenMaxAge": "86400s"
      },
      "upstream": {
        "maxConcurrentRequests": 4,
        "connectTimeout": "2s",
        "requestTimeout": "10s"
      },
      "shutdownGracePeriod": "5s"
    })json",
                            dir_.path());
  }

  v1::BrokerConfig Good() const {
    absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(GoodJson());
    EXPECT_OK(config);
    return config.value_or(v1::BrokerConfig());
  }

  // The config is rejected with exactly one problem, about `path`.
  static void ExpectOnlyProblemAt(const v1::BrokerConfig& config,
                                  const std::string& path,
                                  const std::string& detail = "") {
    absl::Status status = ValidateConfig(config);
    ASSERT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr(detail)));
    EXPECT_THAT(Lines(status),
                ElementsAre(StartsWith(absl::StrCat("config: ", path, ": "))));
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr(kSecret)));
  }

  static void ExpectParseErrorLines(absl::string_view json,
                                    const std::vector<std::string>& lines) {
    absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(json);
    ASSERT_THAT(config,
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
    EXPECT_THAT(Lines(config.status()), ::testing::ElementsAreArray(lines));
  }

  TempDir dir_;
};

// --- A good config -------------------------------------------------------

TEST_F(ConfigTest, GoodFullConfigPasses) {
  ASSERT_OK_AND_ASSIGN(v1::BrokerConfig config, ParseConfigJson(GoodJson()));
  EXPECT_OK(ValidateConfig(config));
  EXPECT_EQ(config.tenants(1).name(), "beta.prod");
  EXPECT_EQ(config.tenants(1).upstream_tls().cert_file(),
            dir_.File("beta.crt"));
}

TEST_F(ConfigTest, MinimalConfigPasses) {
  v1::BrokerConfig config = Good();
  config.clear_health_listen_address();
  config.clear_metrics_listen_address();
  config.mutable_server_tls()->clear_refresh_interval();
  config.clear_callers();
  config.clear_admins();
  config.clear_renewal();
  config.clear_upstream();
  config.clear_shutdown_grace_period();
  config.mutable_tenants()->RemoveLast();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_default_scopes();
  t.clear_allowed_scopes();
  t.mutable_upstream_tls()->clear_ca_file();
  EXPECT_OK(ValidateConfig(config));
}

TEST_F(ConfigTest, LoadConfigFileReadsParsesAndValidates) {
  WriteFile(dir_.File("broker.json"), GoodJson());
  ASSERT_OK_AND_ASSIGN(v1::BrokerConfig config,
                       LoadConfigFile(dir_.File("broker.json")));
  EXPECT_EQ(config.listen_address(), "0.0.0.0:8443");
}

TEST_F(ConfigTest, LoadConfigFileMissingNamesThePath) {
  EXPECT_THAT(
      LoadConfigFile(dir_.File("nope.json")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir_.File("nope.json"))));
}

TEST_F(ConfigTest, LoadConfigFileErrorsStartWithThePath) {
  std::string json = GoodJson();
  json.replace(json.find("\"clientId\": \"123456\","), 21, "");
  WriteFile(dir_.File("broker.json"), json);
  absl::StatusOr<v1::BrokerConfig> loaded =
      LoadConfigFile(dir_.File("broker.json"));
  ASSERT_THAT(loaded,
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(Lines(loaded.status()),
              ElementsAre(absl::StrCat(dir_.File("broker.json"),
                                       ": tenants[0].clientId: required")));
}

TEST_F(ConfigTest, ExampleConfigInTheRepositoryParses) {
  // (Not found from __FILE__: ccache with CCACHE_BASEDIR makes it relative.)
  const std::string example =
      absl::StrCat(TZB_SOURCE_DIR, "/deploy/examples/broker.json");
  std::ifstream in(example);
  ASSERT_TRUE(in.good()) << example;
  std::string json((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_OK(ParseConfigJson(json));
}

// --- Parsing ---------------------------------------------------------------

TEST_F(ConfigTest, UnknownTopLevelField) {
  ExpectParseErrorLines(R"({"listenAddress": "a:1", "bogus": 1})",
                        {"config: unknown field \"bogus\""});
}

TEST_F(ConfigTest, UnknownNestedFieldNamesItsPath) {
  ExpectParseErrorLines(
      R"({"tenants": [{"name": "a"}, {"upstreamTls": {"crtFile": "x"}}]})",
      {"config: tenants[1].upstreamTls: unknown field \"crtFile\""});
}

TEST_F(ConfigTest, ProtoFieldNameIsUnknownWithAHint) {
  ExpectParseErrorLines(
      R"({"listen_address": "a:1"})",
      {"config: unknown field \"listen_address\" (did you mean "
       "\"listenAddress\"?)"});
}

TEST_F(ConfigTest, WrongTypesNameTheirPaths) {
  ExpectParseErrorLines(
      R"({"upstream": {"maxConcurrentRequests": "8"},
          "tenants": [{"name": 3, "defaultScopes": "admin"}],
          "callers": {"identity": "x"},
          "renewal": {"jitterFraction": "0.1", "idleTimeout": 60}})",
      {"config: callers: expected an array, got an object",
       "config: renewal.idleTimeout: expected a duration string such as "
       "\"1.5s\", got a number",
       "config: renewal.jitterFraction: expected a number, got a string",
       "config: tenants[0].defaultScopes: expected an array, got a string",
       "config: tenants[0].name: expected a string, got a number",
       "config: upstream.maxConcurrentRequests: expected an integer, got a "
       "string"});
}

TEST_F(ConfigTest, IntegersMustBeWholeAndInRange) {
  ExpectParseErrorLines(
      R"({"upstream": {"maxConcurrentRequests": 1.5}})",
      {"config: upstream.maxConcurrentRequests: expected an integer in "
       "[-2147483648, 2147483647], got 1.5"});
  ExpectParseErrorLines(
      R"({"upstream": {"maxConcurrentRequests": 3000000000}})",
      {"config: upstream.maxConcurrentRequests: expected an integer in "
       "[-2147483648, 2147483647], got 3000000000"});
}

TEST_F(ConfigTest, MalformedDuration) {
  ExpectParseErrorLines(
      R"({"shutdownGracePeriod": "10"})",
      {"config: shutdownGracePeriod: expected a duration such as \"30s\" or "
       "\"0.5s\" (at most 315576000000s), got \"10\""});
  for (const char* bad :
       {"1.s", "-s", "1.1234567891s", "315576000001s", "1m", "+1s", " 1s"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(ParseConfigJson(
                    absl::StrCat(R"({"shutdownGracePeriod": ")", bad, "\"}")),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         StartsWith("config: shutdownGracePeriod: expected a "
                                    "duration")));
  }
  EXPECT_OK(ParseConfigJson(R"({"shutdownGracePeriod": "315576000000s"})"));
  EXPECT_OK(ParseConfigJson(R"({"shutdownGracePeriod": "-0.000000001s"})"));
}

TEST_F(ConfigTest, ArrayElementOfWrongType) {
  ExpectParseErrorLines(
      R"({"callers": [{"identity": "a"}, 5, null]})",
      {"config: callers[1]: expected an object, got a number",
       "config: callers[2]: null is not allowed in an array"});
}

TEST_F(ConfigTest, DuplicateKeyIsAnError) {
  ExpectParseErrorLines(R"({"listenAddress": "a:1", "listenAddress": "b:2"})",
                        {"config: duplicate key \"listenAddress\""});
}

TEST_F(ConfigTest, InvalidJson) {
  absl::StatusOr<v1::BrokerConfig> config =
      ParseConfigJson("{\"listenAddress\": \"a:1\" \"x\": 2}");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               StartsWith("config: invalid JSON: ")));
  EXPECT_THAT(Lines(config.status()), ::testing::SizeIs(1));
  EXPECT_THAT(ParseConfigJson(""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("config: invalid JSON: ")));
}

TEST_F(ConfigTest, DocumentMustBeAnObject) {
  ExpectParseErrorLines("[1]",
                        {"config: expected a JSON object, got an array"});
}

TEST_F(ConfigTest, NullMeansAbsent) {
  ASSERT_OK_AND_ASSIGN(
      v1::BrokerConfig config,
      ParseConfigJson(R"({"listenAddress": null, "renewal": null})"));
  EXPECT_EQ(config.listen_address(), "");
  EXPECT_FALSE(config.has_renewal());
}

// --- Validation: addresses ----------------------------------------------

TEST_F(ConfigTest, ListenAddressRequired) {
  v1::BrokerConfig config = Good();
  config.clear_listen_address();
  ExpectOnlyProblemAt(config, "listenAddress", "required");
}

TEST_F(ConfigTest, ListenAddressMustBeHostPort) {
  for (const char* bad :
       {"8443", "localhost", ":8443", "::1:8443", "[::1]8443", "[::1",
        "host:99999", "host:http", "unix:/run/broker.sock", "[]:1", "h st:1"}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.set_listen_address(bad);
    ExpectOnlyProblemAt(config, "listenAddress", "is not host:port");
  }
}

TEST_F(ConfigTest, ListenAddressForms) {
  for (const char* good : {"127.0.0.1:8443", "[::1]:8443", "[::]:0",
                           "broker.internal:443", "localhost:0"}) {
    SCOPED_TRACE(good);
    v1::BrokerConfig config = Good();
    config.set_listen_address(good);
    EXPECT_OK(ValidateConfig(config));
  }
}

TEST_F(ConfigTest, HealthListenAddressMustBeHostPort) {
  v1::BrokerConfig config = Good();
  config.set_health_listen_address("8081");
  ExpectOnlyProblemAt(config, "healthListenAddress", "is not host:port");
}

TEST_F(ConfigTest, MetricsListenAddressMustDifferFromListenAddress) {
  v1::BrokerConfig config = Good();
  config.set_metrics_listen_address("0.0.0.0:8443");
  ExpectOnlyProblemAt(config, "metricsListenAddress", "overlaps listenAddress");
}

TEST_F(ConfigTest, WildcardOverlapsASpecificHostOnTheSamePort) {
  v1::BrokerConfig config = Good();
  config.set_health_listen_address("127.0.0.1:8443");
  ExpectOnlyProblemAt(config, "healthListenAddress", "overlaps listenAddress");
}

TEST_F(ConfigTest, PortZeroNeverOverlaps) {
  v1::BrokerConfig config = Good();
  config.set_listen_address("127.0.0.1:0");
  config.set_health_listen_address("127.0.0.1:0");
  config.set_metrics_listen_address("127.0.0.1:0");
  EXPECT_OK(ValidateConfig(config));
}

// --- Validation: server TLS ----------------------------------------------

TEST_F(ConfigTest, ServerTlsCertFileRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->clear_cert_file();
  ExpectOnlyProblemAt(config, "serverTls.certFile", "required");
}

TEST_F(ConfigTest, ServerTlsKeyFileMustExist) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->set_key_file(dir_.File("missing.key"));
  ExpectOnlyProblemAt(config, "serverTls.keyFile",
                      absl::StrCat("cannot read \"", dir_.File("missing.key"),
                                   "\": No such file or directory"));
}

TEST_F(ConfigTest, ServerTlsClientCaFileMustNotBeEmpty) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->set_client_ca_file(dir_.File("empty"));
  ExpectOnlyProblemAt(config, "serverTls.clientCaFile", "is empty");
}

TEST_F(ConfigTest, ServerTlsFileMustBeARegularFile) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->set_client_ca_file(dir_.path());
  ExpectOnlyProblemAt(config, "serverTls.clientCaFile",
                      "is not a regular file");
}

TEST_F(ConfigTest, ServerTlsRefreshIntervalMustBePositive) {
  v1::BrokerConfig config = Good();
  *config.mutable_server_tls()->mutable_refresh_interval() = Dur(0);
  ExpectOnlyProblemAt(config, "serverTls.refreshInterval", "must be positive");
}

// --- Validation: tenants ---------------------------------------------------

TEST_F(ConfigTest, TenantsRequired) {
  v1::BrokerConfig config = Good();
  config.clear_tenants();
  config.clear_callers();
  ExpectOnlyProblemAt(config, "tenants", "at least one");
}

TEST_F(ConfigTest, TenantNameRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_name();
  config.mutable_callers(0)->mutable_tenants()->RemoveLast();
  ExpectOnlyProblemAt(config, "tenants[1].name", "required");
}

TEST_F(ConfigTest, TenantNameCharacters) {
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

TEST_F(ConfigTest, TenantNamesUnique) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->set_name("acme");
  config.mutable_callers(0)->mutable_tenants()->RemoveLast();
  ExpectOnlyProblemAt(config, "tenants[1].name",
                      "\"acme\" is already the name of tenants[0]");
}

TEST_F(ConfigTest, BaseUrlRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->clear_base_url();
  ExpectOnlyProblemAt(config, "tenants[0].baseUrl", "required");
}

TEST_F(ConfigTest, BaseUrlMustBeHttps) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_base_url("http://acme.sandbox.treezor.co");
  ExpectOnlyProblemAt(config, "tenants[0].baseUrl",
                      "must start with \"https://\"");
}

TEST_F(ConfigTest, BaseUrlTrailingSlashIsRejected) {
  for (const char* bad : {"https://acme.sandbox.treezor.co/",
                          "https://acme.sandbox.treezor.co/v1/"}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_tenants(0)->set_base_url(bad);
    ExpectOnlyProblemAt(config, "tenants[0].baseUrl",
                        "must not end with \"/\"");
  }
}

TEST_F(ConfigTest, BaseUrlShape) {
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

TEST_F(ConfigTest, GrantTypeMustBeKnown) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_grant_type("authorization_code");
  ExpectOnlyProblemAt(config, "tenants[0].grantType", "authorization_code");
}

TEST_F(ConfigTest, ClientIdRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_client_id();
  ExpectOnlyProblemAt(config, "tenants[1].clientId", "required");
}

TEST_F(ConfigTest, ClientSecretRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->clear_client_secret_file();
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretFile",
                      "required (or clientSecretEnv)");
}

TEST_F(ConfigTest, ClientSecretFileAndEnvAreExclusive) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_env("HOME");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv", "only one");
}

TEST_F(ConfigTest, ClientSecretFileMustBeReadable) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_file(dir_.File("missing"));
  ExpectOnlyProblemAt(
      config, "tenants[0].clientSecretFile",
      absl::StrCat("cannot read \"", dir_.File("missing"), "\""));
}

TEST_F(ConfigTest, ClientSecretFileOfOnlyNewlinesIsEmpty) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_file(dir_.File("newlines"));
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretFile",
                      absl::StrCat("\"", dir_.File("newlines"), "\" is empty"));
}

// The fetch path drops trailing whitespace, so a file of blanks would fail
// every token request: validation applies the same rule.
TEST_F(ConfigTest, ClientSecretFileOfOnlyWhitespaceIsEmpty) {
  WriteFile(dir_.File("blanks"), " \t  \r\n \n");
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_client_secret_file(dir_.File("blanks"));
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretFile",
                      absl::StrCat("\"", dir_.File("blanks"), "\" is empty"));
}

TEST_F(ConfigTest, PasswordFileOfOnlyWhitespaceIsEmpty) {
  WriteFile(dir_.File("blanks"), "  \n");
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->set_password_file(dir_.File("blanks"));
  ExpectOnlyProblemAt(config, "tenants[1].passwordFile", "is empty");
}

TEST_F(ConfigTest, ClientSecretEnvOfOnlyWhitespaceIsEmpty) {
  ::setenv("TZB_CONFIG_TEST_BLANK", " \t\n", 1);
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_BLANK");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "environment variable TZB_CONFIG_TEST_BLANK is empty");
}

TEST_F(ConfigTest, ClientSecretEnvMustBeSet) {
  ::unsetenv("TZB_CONFIG_TEST_UNSET");
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_UNSET");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "environment variable TZB_CONFIG_TEST_UNSET is not set");
}

TEST_F(ConfigTest, ClientSecretEnvMustNotBeEmpty) {
  ::setenv("TZB_CONFIG_TEST_EMPTY", "", 1);
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_EMPTY");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "environment variable TZB_CONFIG_TEST_EMPTY is empty");
}

TEST_F(ConfigTest, ClientSecretEnvSetIsAccepted) {
  ::setenv("TZB_CONFIG_TEST_SECRET", kSecret, 1);
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("TZB_CONFIG_TEST_SECRET");
  EXPECT_OK(ValidateConfig(config));
}

TEST_F(ConfigTest, ClientSecretEnvMustBeAVariableName) {
  v1::BrokerConfig config = Good();
  v1::Tenant& t = *config.mutable_tenants(0);
  t.clear_client_secret_file();
  t.set_client_secret_env("1BAD=NAME");
  ExpectOnlyProblemAt(config, "tenants[0].clientSecretEnv",
                      "not an environment variable name");
}

TEST_F(ConfigTest, PasswordGrantRequiresUsernameFile) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_username_file();
  ExpectOnlyProblemAt(config, "tenants[1].usernameFile", "required");
}

TEST_F(ConfigTest, PasswordGrantRequiresReadablePasswordFile) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->set_password_file(dir_.File("empty"));
  ExpectOnlyProblemAt(config, "tenants[1].passwordFile", "is empty");
}

TEST_F(ConfigTest, UsernameFileRejectedForClientCredentials) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_username_file(dir_.File("beta.user"));
  ExpectOnlyProblemAt(config, "tenants[0].usernameFile",
                      "only for grantType \"password\"");
}

TEST_F(ConfigTest, PasswordFileRejectedForExplicitClientCredentials) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_grant_type("client_credentials");
  config.mutable_tenants(0)->set_password_file(dir_.File("beta.password"));
  ExpectOnlyProblemAt(config, "tenants[0].passwordFile",
                      "only for grantType \"password\"");
}

TEST_F(ConfigTest, DefaultScopesMustBeValid) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->add_default_scopes("read all");
  ExpectOnlyProblemAt(config, "tenants[1].defaultScopes[0]");
}

TEST_F(ConfigTest, AllowedScopesMustBeValid) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->add_allowed_scopes("");
  ExpectOnlyProblemAt(config, "tenants[0].allowedScopes[3]");
}

TEST_F(ConfigTest, DefaultScopesMustBeAllowed) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->add_default_scopes("keys");
  ExpectOnlyProblemAt(config, "tenants[0].defaultScopes[1]",
                      "\"keys\" is not in allowedScopes");
}

TEST_F(ConfigTest, UpstreamTlsCertFileRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(1)->clear_upstream_tls();
  absl::Status status = ValidateConfig(config);
  EXPECT_THAT(Lines(status),
              ElementsAre("config: tenants[1].upstreamTls.certFile: required "
                          "(Treezor requires mutual TLS)",
                          "config: tenants[1].upstreamTls.keyFile: required "
                          "(Treezor requires mutual TLS)"));
}

TEST_F(ConfigTest, UpstreamTlsKeyFileRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->mutable_upstream_tls()->clear_key_file();
  ExpectOnlyProblemAt(config, "tenants[0].upstreamTls.keyFile", "required");
}

TEST_F(ConfigTest, UpstreamTlsCaFileMustBeReadableIfSet) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->mutable_upstream_tls()->set_ca_file(
      dir_.File("missing-ca.crt"));
  ExpectOnlyProblemAt(config, "tenants[0].upstreamTls.caFile", "cannot read");
}

TEST_F(ConfigTest, RequestEncodingMustBeKnown) {
  v1::BrokerConfig config = Good();
  config.mutable_tenants(0)->set_request_encoding("xml");
  ExpectOnlyProblemAt(config, "tenants[0].requestEncoding", "\"xml\"");
}

// --- Validation: callers and admins ----------------------------------------

TEST_F(ConfigTest, CallerIdentityRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->clear_identity();
  ExpectOnlyProblemAt(config, "callers[1].identity", "required");
}

TEST_F(ConfigTest, CallerIdentitiesUnique) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->set_identity("spiffe://corp/payments");
  ExpectOnlyProblemAt(config, "callers[1].identity",
                      "is already listed in callers[0]");
}

TEST_F(ConfigTest, CallerTenantsRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->clear_tenants();
  ExpectOnlyProblemAt(config, "callers[1].tenants", "at least one");
}

TEST_F(ConfigTest, CallerTenantsMustBeConfigured) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(0)->add_tenants("gamma");
  ExpectOnlyProblemAt(config, "callers[0].tenants[2]",
                      "no tenant is named \"gamma\"");
}

TEST_F(ConfigTest, CallerScopesMustBeValid) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->add_scopes("read/all");
  ExpectOnlyProblemAt(config, "callers[1].scopes[1]");
}

TEST_F(ConfigTest, AdminIdentityRequired) {
  v1::BrokerConfig config = Good();
  config.add_admins();
  ExpectOnlyProblemAt(config, "admins[1].identity", "required");
}

// --- Validation: renewal, upstream, shutdown -------------------------------

TEST_F(ConfigTest, RenewRemainingFractionInOpenUnitInterval) {
  for (double bad : {0.0, 1.0, -0.5, 1.5}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_renewal()->set_renew_remaining_fraction(bad);
    ExpectOnlyProblemAt(config, "renewal.renewRemainingFraction",
                        "must be in (0, 1)");
  }
}

TEST_F(ConfigTest, JitterFractionBelowRenewRemainingFraction) {
  for (double bad : {-0.01, 0.3, 0.5}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_renewal()->set_jitter_fraction(bad);
    ExpectOnlyProblemAt(config, "renewal.jitterFraction",
                        "must be in [0, renewRemainingFraction (0.3))");
  }
}

TEST_F(ConfigTest, DefaultJitterAgainstASmallRenewFractionBlamesTheField) {
  v1::BrokerConfig config = Good();
  config.mutable_renewal()->clear_jitter_fraction();
  config.mutable_renewal()->set_renew_remaining_fraction(0.04);
  ExpectOnlyProblemAt(config, "renewal.renewRemainingFraction",
                      "jitterFraction (0.05, the default)");
}

TEST_F(ConfigTest, MinRemainingFractionInHalfOpenUnitInterval) {
  v1::BrokerConfig config = Good();
  config.mutable_renewal()->set_min_remaining_fraction(1.0);
  ExpectOnlyProblemAt(config, "renewal.minRemainingFraction",
                      "must be in [0, 1)");
}

TEST_F(ConfigTest, MinRemainingNotNegative) {
  v1::BrokerConfig config = Good();
  *config.mutable_renewal()->mutable_min_remaining() = Dur(-1);
  ExpectOnlyProblemAt(config, "renewal.minRemaining", "must not be negative");
}

TEST_F(ConfigTest, RenewalDurationsMustBePositive) {
  using Setter = google::protobuf::Duration* (v1::Renewal::*)();
  const std::vector<std::pair<Setter, std::string>> fields = {
      {&v1::Renewal::mutable_idle_timeout, "renewal.idleTimeout"},
      {&v1::Renewal::mutable_refused_backoff, "renewal.refusedBackoff"},
      {&v1::Renewal::mutable_refresh_token_max_age,
       "renewal.refreshTokenMaxAge"},
  };
  for (const auto& [setter, path] : fields) {
    SCOPED_TRACE(path);
    v1::BrokerConfig config = Good();
    *(config.mutable_renewal()->*setter)() = Dur(0);
    ExpectOnlyProblemAt(config, path, "must be positive, got 0");
  }
}

TEST_F(ConfigTest, InitialBackoffMustBePositive) {
  v1::BrokerConfig config = Good();
  *config.mutable_renewal()->mutable_initial_backoff() = Dur(0, -1000);
  ExpectOnlyProblemAt(config, "renewal.initialBackoff", "must be positive");
}

TEST_F(ConfigTest, MaxBackoffNotBelowInitialBackoff) {
  v1::BrokerConfig config = Good();
  *config.mutable_renewal()->mutable_max_backoff() = Dur(0, 100'000'000);
  ExpectOnlyProblemAt(config, "renewal.maxBackoff",
                      "maxBackoff (100ms) must not be less than "
                      "initialBackoff (500ms)");
}

TEST_F(ConfigTest, InitialBackoffAboveDefaultMaxBackoffBlamesInitialBackoff) {
  v1::BrokerConfig config = Good();
  config.mutable_renewal()->clear_max_backoff();
  *config.mutable_renewal()->mutable_initial_backoff() = Dur(120);
  ExpectOnlyProblemAt(config, "renewal.initialBackoff",
                      "maxBackoff (1m, the default)");
}

TEST_F(ConfigTest, MaxConcurrentRequestsInRange) {
  for (int bad : {0, -1, 1025}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_upstream()->set_max_concurrent_requests(bad);
    ExpectOnlyProblemAt(config, "upstream.maxConcurrentRequests",
                        "must be in [1, 1024]");
  }
}

TEST_F(ConfigTest, UpstreamTimeoutsMustBePositive) {
  v1::BrokerConfig config = Good();
  *config.mutable_upstream()->mutable_connect_timeout() = Dur(0);
  ExpectOnlyProblemAt(config, "upstream.connectTimeout", "must be positive");
  config = Good();
  *config.mutable_upstream()->mutable_request_timeout() = Dur(-3);
  ExpectOnlyProblemAt(config, "upstream.requestTimeout",
                      "must be positive, got -3s");
}

TEST_F(ConfigTest, ShutdownGracePeriodNotNegative) {
  v1::BrokerConfig config = Good();
  *config.mutable_shutdown_grace_period() = Dur(-5);
  ExpectOnlyProblemAt(config, "shutdownGracePeriod", "must not be negative");
  *config.mutable_shutdown_grace_period() = Dur(0);
  EXPECT_OK(ValidateConfig(config));
}

// --- Several problems, secrets --------------------------------------------

TEST_F(ConfigTest, AllProblemsAreReportedTogether) {
  v1::BrokerConfig config = Good();
  config.clear_listen_address();
  config.mutable_tenants(0)->clear_client_id();
  config.mutable_tenants(1)->set_request_encoding("xml");
  config.mutable_callers(1)->add_tenants("gamma");
  config.mutable_upstream()->set_max_concurrent_requests(0);
  absl::Status status = ValidateConfig(config);
  EXPECT_THAT(
      Lines(status),
      ElementsAre(StartsWith("config: listenAddress: "),
                  StartsWith("config: tenants[0].clientId: "),
                  StartsWith("config: tenants[1].requestEncoding: "),
                  StartsWith("config: callers[1].tenants[1]: "),
                  StartsWith("config: upstream.maxConcurrentRequests: ")));
}

TEST_F(ConfigTest, SecretsNeverAppearInErrors) {
  ::setenv("TZB_CONFIG_TEST_SECRET", kSecret, 1);
  v1::BrokerConfig config = Good();
  // Every secret-related check fails, next to files holding the secret.
  v1::Tenant& acme = *config.mutable_tenants(0);
  acme.set_client_secret_env("TZB_CONFIG_TEST_SECRET");  // both set
  acme.set_username_file(dir_.File("beta.user"));        // wrong grant
  acme.set_password_file(dir_.File("beta.password"));
  v1::Tenant& beta = *config.mutable_tenants(1);
  beta.set_grant_type("refresh_token");
  beta.mutable_upstream_tls()->set_key_file(dir_.File("beta.secret") + "/x");
  absl::Status status = ValidateConfig(config);
  ASSERT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("clientSecretEnv")));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr(kSecret)));
  EXPECT_THAT(Lines(status), ::testing::SizeIs(5));
}

// --- Effective settings ----------------------------------------------------

TEST(ConfigDefaults, AbsentSectionsTakeTheDocumentedDefaults) {
  const v1::BrokerConfig config;
  const BrokerSettings settings = ResolveSettings(config);
  const RenewalSettings& r = settings.renewal;
  const RenewalSettings d;
  EXPECT_EQ(r.renew_remaining_fraction, 0.25);
  EXPECT_EQ(r.jitter_fraction, 0.05);
  EXPECT_EQ(r.min_remaining, absl::Seconds(60));
  EXPECT_EQ(r.min_remaining_fraction, 0.10);
  EXPECT_EQ(r.idle_timeout, absl::Hours(1));
  EXPECT_EQ(r.initial_backoff, absl::Seconds(1));
  EXPECT_EQ(r.max_backoff, absl::Seconds(60));
  EXPECT_EQ(r.refused_backoff, d.refused_backoff);
  EXPECT_EQ(r.refresh_token_max_age, absl::Hours(24 * 30));

  const UpstreamSettings& u = settings.upstream;
  EXPECT_EQ(u.max_concurrent_requests, 8);
  EXPECT_EQ(u.connect_timeout, absl::Seconds(5));
  EXPECT_EQ(u.request_timeout, absl::Seconds(15));

  EXPECT_EQ(settings.shutdown_grace_period, absl::Seconds(10));
  EXPECT_EQ(settings.server_tls.refresh_interval, absl::Seconds(60));
}

TEST(ConfigDefaults, PartialSectionsKeepDefaultsForAbsentFields) {
  ASSERT_OK_AND_ASSIGN(v1::BrokerConfig config, ParseConfigJson(R"({
      "renewal": {"jitterFraction": 0, "maxBackoff": "300s"},
      "upstream": {"requestTimeout": "2.5s"},
      "shutdownGracePeriod": "0s"})"));
  const BrokerSettings settings = ResolveSettings(config);
  const RenewalSettings& r = settings.renewal;
  EXPECT_EQ(r.jitter_fraction, 0.0);  // explicitly zero, not the default
  EXPECT_EQ(r.max_backoff, absl::Minutes(5));
  EXPECT_EQ(r.renew_remaining_fraction, 0.25);
  EXPECT_EQ(r.initial_backoff, absl::Seconds(1));
  const UpstreamSettings& u = settings.upstream;
  EXPECT_EQ(u.request_timeout, absl::Milliseconds(2500));
  EXPECT_EQ(u.connect_timeout, absl::Seconds(5));
  EXPECT_EQ(u.max_concurrent_requests, 8);
  EXPECT_EQ(settings.shutdown_grace_period, absl::ZeroDuration());
}

TEST_F(ConfigTest, ConfiguredValuesOverrideDefaults) {
  const v1::BrokerConfig config = Good();
  const BrokerSettings settings = ResolveSettings(config);
  const RenewalSettings& r = settings.renewal;
  EXPECT_EQ(r.renew_remaining_fraction, 0.3);
  EXPECT_EQ(r.jitter_fraction, 0.1);
  EXPECT_EQ(r.min_remaining, absl::Seconds(30));
  EXPECT_EQ(r.min_remaining_fraction, 0.2);
  EXPECT_EQ(r.idle_timeout, absl::Hours(2));
  EXPECT_EQ(r.initial_backoff, absl::Milliseconds(500));
  EXPECT_EQ(r.max_backoff, absl::Seconds(30));
  EXPECT_EQ(r.refused_backoff, absl::Minutes(2));
  EXPECT_EQ(r.refresh_token_max_age, absl::Hours(24));
  const UpstreamSettings& u = settings.upstream;
  EXPECT_EQ(u.max_concurrent_requests, 4);
  EXPECT_EQ(u.connect_timeout, absl::Seconds(2));
  EXPECT_EQ(u.request_timeout, absl::Seconds(10));
  EXPECT_EQ(settings.shutdown_grace_period, absl::Seconds(5));
  EXPECT_EQ(settings.server_tls.refresh_interval, absl::Seconds(30));
}

}  // namespace
}  // namespace treezor::broker
