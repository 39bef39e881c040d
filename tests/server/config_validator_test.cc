// ValidateConfig: a good config, listen addresses, server TLS, shutdown, and
// what holds across sections (every problem at once, no secret in errors).
#include "server/config_validator.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
using ::treezor::broker::testing::Dur;
using ::treezor::broker::testing::kSecret;
using ::treezor::broker::testing::Lines;
using ::treezor::broker::testing::StatusIs;
using ::treezor::broker::testing::WriteFile;

class ConfigValidatorTest : public ConfigFixture {};

TEST_F(ConfigValidatorTest, GoodFullConfigPasses) {
  ASSERT_OK_AND_ASSIGN(v1::BrokerConfig config, ParseConfigJson(GoodJson()));
  EXPECT_OK(ValidateConfig(config));
  EXPECT_EQ(config.tenants(1).name(), "beta.prod");
  EXPECT_EQ(config.tenants(1).upstream_tls().cert_file(),
            dir_.File("beta.crt"));
}

TEST_F(ConfigValidatorTest, MinimalConfigPasses) {
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

TEST_F(ConfigValidatorTest, ListenAddressRequired) {
  v1::BrokerConfig config = Good();
  config.clear_listen_address();
  ExpectOnlyProblemAt(config, "listenAddress", "required");
}

TEST_F(ConfigValidatorTest, ListenAddressMustBeHostPort) {
  for (const char* bad :
       {"8443", "localhost", ":8443", "::1:8443", "[::1]8443", "[::1",
        "host:99999", "host:http", "unix:/run/broker.sock", "[]:1", "h st:1"}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.set_listen_address(bad);
    ExpectOnlyProblemAt(config, "listenAddress", "is not host:port");
  }
}

TEST_F(ConfigValidatorTest, ListenAddressForms) {
  for (const char* good : {"127.0.0.1:8443", "[::1]:8443", "[::]:0",
                           "broker.internal:443", "localhost:0"}) {
    SCOPED_TRACE(good);
    v1::BrokerConfig config = Good();
    config.set_listen_address(good);
    EXPECT_OK(ValidateConfig(config));
  }
}

TEST_F(ConfigValidatorTest, HealthListenAddressMustBeHostPort) {
  v1::BrokerConfig config = Good();
  config.set_health_listen_address("8081");
  ExpectOnlyProblemAt(config, "healthListenAddress", "is not host:port");
}

TEST_F(ConfigValidatorTest, MetricsListenAddressMustDifferFromListenAddress) {
  v1::BrokerConfig config = Good();
  config.set_metrics_listen_address("0.0.0.0:8443");
  ExpectOnlyProblemAt(config, "metricsListenAddress", "overlaps listenAddress");
}

TEST_F(ConfigValidatorTest, WildcardOverlapsASpecificHostOnTheSamePort) {
  v1::BrokerConfig config = Good();
  config.set_health_listen_address("127.0.0.1:8443");
  ExpectOnlyProblemAt(config, "healthListenAddress", "overlaps listenAddress");
}

TEST_F(ConfigValidatorTest, PortZeroNeverOverlaps) {
  v1::BrokerConfig config = Good();
  config.set_listen_address("127.0.0.1:0");
  config.set_health_listen_address("127.0.0.1:0");
  config.set_metrics_listen_address("127.0.0.1:0");
  EXPECT_OK(ValidateConfig(config));
}

TEST_F(ConfigValidatorTest, ServerTlsCertFileRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->clear_cert_file();
  ExpectOnlyProblemAt(config, "serverTls.certFile", "required");
}

TEST_F(ConfigValidatorTest, ServerTlsKeyFileMustExist) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->set_key_file(dir_.File("missing.key"));
  ExpectOnlyProblemAt(config, "serverTls.keyFile",
                      absl::StrCat("cannot read \"", dir_.File("missing.key"),
                                   "\": No such file or directory"));
}

TEST_F(ConfigValidatorTest, ServerTlsClientCaFileMustNotBeEmpty) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->set_client_ca_file(dir_.File("empty"));
  ExpectOnlyProblemAt(config, "serverTls.clientCaFile", "is empty");
}

TEST_F(ConfigValidatorTest, ServerTlsFileMustBeARegularFile) {
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->set_client_ca_file(dir_.path());
  ExpectOnlyProblemAt(config, "serverTls.clientCaFile",
                      "is not a regular file");
}

TEST_F(ConfigValidatorTest, ServerTlsRefreshIntervalMustBePositive) {
  v1::BrokerConfig config = Good();
  *config.mutable_server_tls()->mutable_refresh_interval() = Dur(0);
  ExpectOnlyProblemAt(config, "serverTls.refreshInterval", "must be positive");
}

TEST_F(ConfigValidatorTest, ShutdownGracePeriodNotNegative) {
  v1::BrokerConfig config = Good();
  *config.mutable_shutdown_grace_period() = Dur(-5);
  ExpectOnlyProblemAt(config, "shutdownGracePeriod", "must not be negative");
  *config.mutable_shutdown_grace_period() = Dur(0);
  EXPECT_OK(ValidateConfig(config));
}

TEST_F(ConfigValidatorTest, AllProblemsAreReportedTogether) {
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

TEST_F(ConfigValidatorTest, SecretsNeverAppearInErrors) {
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

// --- Files: absolute paths and permissions (issue 10 item 9) -------------

TEST_F(ConfigValidatorTest, ServerTlsPathsMustBeAbsolute) {
  using Setter = void (v1::ServerTls::*)(const std::string&);
  for (const auto& [setter, path] :
       std::vector<std::pair<Setter, std::string>>{
           {&v1::ServerTls::set_cert_file, "serverTls.certFile"},
           {&v1::ServerTls::set_key_file, "serverTls.keyFile"},
           {&v1::ServerTls::set_client_ca_file, "serverTls.clientCaFile"}}) {
    SCOPED_TRACE(path);
    v1::BrokerConfig config = Good();
    (config.mutable_server_tls()->*setter)("certs/server.pem");
    ExpectOnlyProblemAt(config, path,
                        "\"certs/server.pem\" must be an absolute path");
  }
}

TEST_F(ConfigValidatorTest, ServerKeyWritableByGroupOrOthersIsRefused) {
  for (mode_t mode : {0620, 0602, 0660}) {
    SCOPED_TRACE(mode);
    Chmod("server.key", mode);
    ExpectOnlyProblemAt(Good(), "serverTls.keyFile",
                        absl::StrFormat("may be written by its group or "
                                        "others (mode %04o)",
                                        mode));
  }
}

TEST_F(ConfigValidatorTest, CertificatesAndCaWritableByOthersAreRefused) {
  // Whoever can write the client CA bundle can add a CA and be any caller.
  Chmod("clients-ca.crt", 0666);
  ExpectOnlyProblemAt(Good(), "serverTls.clientCaFile",
                      "may be written by its group or others (mode 0666)");
  Chmod("clients-ca.crt", 0644);
  Chmod("server.crt", 0664);
  ExpectOnlyProblemAt(Good(), "serverTls.certFile", "(mode 0664)");
}

TEST_F(ConfigValidatorTest, ServerKeyReadableByOthersIsAWarning) {
  Chmod("server.key", 0604);
  ExpectWarningsAt(Good(), {"serverTls.keyFile"},
                   absl::StrCat("\"", dir_.File("server.key"),
                                "\" is readable by others (mode 0604)"));
}

TEST_F(ConfigValidatorTest, CertificatesMayBeReadByAnyone) {
  Chmod("server.crt", 0644);
  Chmod("clients-ca.crt", 0444);
  ExpectWarningsAt(Good(), {});
}

// What the Helm chart mounts: Secret volumes with defaultMode 0440, group
// fsGroup, the files reached through symlinks (..data/<key>) whose own mode
// is 0777.
TEST_F(ConfigValidatorTest, KubernetesSecretVolumeLayoutIsAccepted) {
  ASSERT_EQ(::mkdir(dir_.File("..data").c_str(), 0755), 0);
  WriteFile(dir_.File("..data/tls.key"), "-----BEGIN PEM-----\n", 0440);
  ASSERT_EQ(::symlink("..data/tls.key", dir_.File("tls.key").c_str()), 0);
  v1::BrokerConfig config = Good();
  config.mutable_server_tls()->set_key_file(dir_.File("tls.key"));
  for (const char* name : {"server.crt", "clients-ca.crt", "acme.secret",
                           "acme.key", "beta.secret", "beta.user",
                           "beta.password", "beta.key", "acme.crt",
                           "treezor-ca.crt", "beta.crt"}) {
    Chmod(name, 0440);
  }
  ExpectWarningsAt(config, {});
}

TEST_F(ConfigValidatorTest, WarningsAreReportedBesideProblems) {
  Chmod("server.key", 0644);
  v1::BrokerConfig config = Good();
  config.clear_listen_address();
  std::vector<ConfigWarning> warnings;
  EXPECT_THAT(ValidateConfig(config, &warnings),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("config: listenAddress: required")));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].field, "serverTls.keyFile");
  EXPECT_THAT(warnings[0].ToString(),
              StartsWith("serverTls.keyFile: \"" + dir_.File("server.key")));
}

}  // namespace
}  // namespace treezor::broker
