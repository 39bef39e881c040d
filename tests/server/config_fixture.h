// A complete, valid configuration whose files live in a temp dir, for the
// config tests (config_test.cc, config_validator*_test.cc,
// settings_resolver_test.cc): each test breaks one thing and checks that the
// error names that field.
//
//   class ConfigValidatorTest : public testing::ConfigFixture {};
//   TEST_F(ConfigValidatorTest, ClientIdRequired) {
//     v1::BrokerConfig config = Good();
//     config.mutable_tenants(1)->clear_client_id();
//     ExpectOnlyProblemAt(config, "tenants[1].clientId", "required");
//   }
//
// Thread-safety: one test at a time (it is a gtest fixture).
#ifndef TREEZOR_BROKER_TESTS_SERVER_CONFIG_FIXTURE_H_
#define TREEZOR_BROKER_TESTS_SERVER_CONFIG_FIXTURE_H_

#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/substitute.h"
#include "gmock/gmock.h"
#include "google/protobuf/duration.pb.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker::testing {

inline constexpr char kSecret[] = "s3cr3t-value-never-printed";

inline std::vector<std::string> Lines(const absl::Status& status) {
  return absl::StrSplit(status.message(), '\n');
}

// Writes `content` to `path` with permissions `mode` (secret files and keys
// are 0600 unless a test says otherwise).
inline void WriteFile(const std::string& path, const std::string& content,
                      mode_t mode = 0600) {
  std::ofstream(path, std::ios::binary) << content;
  ::chmod(path.c_str(), mode);
}

inline google::protobuf::Duration Dur(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

class ConfigFixture : public ::testing::Test {
 protected:
  ConfigFixture() {
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
        "refreshTokenMaxAge": "86400s",
        "minTokenLifetime": "3s",
        "rejectedTokenMinInterval": "20s"
      },
      "upstream": {
        "maxConcurrentRequests": 4,
        "connectTimeout": "2s",
        "requestTimeout": "10s"
      },
      "limits": {
        "handshakeTimeout": "2s",
        "memoryBytes": 67108864,
        "maxConcurrentStreams": 50,
        "maxConnectionAge": "600s",
        "maxConnectionAgeGrace": "10s",
        "maxConnectionIdle": "120s",
        "minPingInterval": "20s",
        "maxWatchStreamsPerCaller": 8,
        "maxScopeSetsPerTenant": 32,
        "maxScopeSetsPerCaller": 4,
        "healthMemoryBytes": 2097152,
        "healthMaxConcurrentStreams": 2,
        "healthMaxConnectionIdle": "10s",
        "maxConnections": 500,
        "maxConnectionsPerPeer": 100,
        "healthMaxConnections": 32,
        "healthMaxConnectionsPerPeer": 8
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
                                 ::testing::HasSubstr(detail)));
    EXPECT_THAT(Lines(status),
                ::testing::ElementsAre(::testing::StartsWith(
                    absl::StrCat("config: ", path, ": "))));
    EXPECT_THAT(std::string(status.message()),
                ::testing::Not(::testing::HasSubstr(kSecret)));
  }

  // The config is accepted, with one warning about each of `fields` (in
  // that order), each saying `detail`.
  static void ExpectWarningsAt(const v1::BrokerConfig& config,
                               const std::vector<std::string>& fields,
                               const std::string& detail = "") {
    std::vector<ConfigWarning> warnings;
    ASSERT_OK(ValidateConfig(config, &warnings));
    std::vector<std::string> warned;
    for (const ConfigWarning& warning : warnings) {
      warned.push_back(warning.field);
      EXPECT_THAT(warning.message, ::testing::HasSubstr(detail));
      EXPECT_THAT(warning.message,
                  ::testing::Not(::testing::HasSubstr(kSecret)));
    }
    EXPECT_THAT(warned, ::testing::ElementsAreArray(fields));
  }

  // Sets the permissions of the fixture's file `name`.
  void Chmod(const std::string& name, mode_t mode) const {
    ASSERT_EQ(::chmod(dir_.File(name).c_str(), mode), 0) << name;
  }

  TempDir dir_;
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_SERVER_CONFIG_FIXTURE_H_
