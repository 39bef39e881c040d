// ValidateConfig: the `limits` section (config_validator_limits.cc) and the
// renewal fields that bound the work a peer can cause (issue 11).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config_validator.h"
#include "tests/server/config_fixture.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::treezor::broker::testing::ConfigFixture;
using ::treezor::broker::testing::Dur;

class LimitsValidationTest : public ConfigFixture {};

// A duration field: its path, a setter, and its range's ends (in seconds and
// nanoseconds), each end accepted and one nanosecond beyond refused.
struct DurationField {
  std::string path;
  std::function<google::protobuf::Duration*(v1::BrokerConfig&)> field;
  google::protobuf::Duration min;
  google::protobuf::Duration max;
  std::string range;  // as the message shows it
};

google::protobuf::Duration Plus(google::protobuf::Duration d, int32_t nanos) {
  int64_t total = d.seconds() * 1'000'000'000 + d.nanos() + nanos;
  google::protobuf::Duration out;
  out.set_seconds(total / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(total % 1'000'000'000));
  return out;
}

TEST_F(LimitsValidationTest, DurationsMustBeInTheirRange) {
  const std::vector<DurationField> fields = {
      {"limits.handshakeTimeout",
       [](v1::BrokerConfig& c) {
         return c.mutable_limits()->mutable_handshake_timeout();
       },
       Dur(0, 100'000'000), Dur(60), "[100ms, 1m]"},
      {"limits.maxConnectionAge",
       [](v1::BrokerConfig& c) {
         return c.mutable_limits()->mutable_max_connection_age();
       },
       Dur(1), Dur(24 * 3600), "[1s, 24h]"},
      {"limits.maxConnectionIdle",
       [](v1::BrokerConfig& c) {
         return c.mutable_limits()->mutable_max_connection_idle();
       },
       Dur(1), Dur(24 * 3600), "[1s, 24h]"},
      {"limits.minPingInterval",
       [](v1::BrokerConfig& c) {
         return c.mutable_limits()->mutable_min_ping_interval();
       },
       Dur(1), Dur(3600), "[1s, 1h]"},
      {"limits.healthMaxConnectionIdle",
       [](v1::BrokerConfig& c) {
         return c.mutable_limits()->mutable_health_max_connection_idle();
       },
       Dur(1), Dur(3600), "[1s, 1h]"},
      {"renewal.minTokenLifetime",
       [](v1::BrokerConfig& c) {
         return c.mutable_renewal()->mutable_min_token_lifetime();
       },
       Dur(1), Dur(600), "[1s, 10m]"},
      {"renewal.rejectedTokenMinInterval",
       [](v1::BrokerConfig& c) {
         return c.mutable_renewal()->mutable_rejected_token_min_interval();
       },
       Dur(1), Dur(300), "[1s, 5m]"},
  };
  for (const DurationField& f : fields) {
    SCOPED_TRACE(f.path);
    v1::BrokerConfig config = Good();
    *f.field(config) = f.min;
    EXPECT_OK(ValidateConfig(config));
    *f.field(config) = f.max;
    EXPECT_OK(ValidateConfig(config));
    *f.field(config) = Plus(f.min, -1);
    ExpectOnlyProblemAt(config, f.path,
                        absl::StrCat("must be in ", f.range, ", got "));
    *f.field(config) = Plus(f.max, 1);
    ExpectOnlyProblemAt(config, f.path,
                        absl::StrCat("must be in ", f.range, ", got "));
  }
}

TEST_F(LimitsValidationTest, ConnectionAgeGraceMayBeZeroButNotNegative) {
  v1::BrokerConfig config = Good();
  *config.mutable_limits()->mutable_max_connection_age_grace() = Dur(0);
  EXPECT_OK(ValidateConfig(config));
  *config.mutable_limits()->mutable_max_connection_age_grace() = Dur(3600);
  EXPECT_OK(ValidateConfig(config));
  *config.mutable_limits()->mutable_max_connection_age_grace() = Dur(-1);
  ExpectOnlyProblemAt(config, "limits.maxConnectionAgeGrace",
                      "must be in [0, 1h], got -1s");
  *config.mutable_limits()->mutable_max_connection_age_grace() = Dur(3601);
  ExpectOnlyProblemAt(config, "limits.maxConnectionAgeGrace",
                      "must be in [0, 1h], got 1h1s");
}

TEST_F(LimitsValidationTest, MessagesShowTheDurationsReadably) {
  v1::BrokerConfig config = Good();
  *config.mutable_limits()->mutable_handshake_timeout() = Dur(0, 50'000'000);
  ExpectOnlyProblemAt(config, "limits.handshakeTimeout",
                      "must be in [100ms, 1m], got 50ms");
}

// An integer field: its path, a setter, its range and how messages show it.
struct IntField {
  std::string path;
  std::function<void(v1::BrokerConfig&, int64_t)> set;
  int64_t min;
  int64_t max;
  std::string range;
};

TEST_F(LimitsValidationTest, CountsAndSizesMustBeInTheirRange) {
  const std::vector<IntField> fields = {
      {"limits.memoryBytes",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_memory_bytes(v);
       },
       int64_t{16} << 20, int64_t{4} << 30,
       "[16777216 (16 MiB), 4294967296 (4 GiB)]"},
      {"limits.maxConcurrentStreams",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_max_concurrent_streams(
             static_cast<int32_t>(v));
       },
       1, 1000, "[1, 1000]"},
      {"limits.maxWatchStreamsPerCaller",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_max_watch_streams_per_caller(
             static_cast<int32_t>(v));
       },
       1, 1000, "[1, 1000]"},
      {"limits.maxScopeSetsPerTenant",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_max_scope_sets_per_tenant(
             static_cast<int32_t>(v));
       },
       1, 1024, "[1, 1024]"},
      {"limits.maxScopeSetsPerCaller",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_max_scope_sets_per_caller(
             static_cast<int32_t>(v));
       },
       1, 1024, "[1, 1024]"},
      {"limits.healthMemoryBytes",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_health_memory_bytes(v);
       },
       int64_t{1} << 20, int64_t{64} << 20,
       "[1048576 (1 MiB), 67108864 (64 MiB)]"},
      {"limits.healthMaxConcurrentStreams",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_health_max_concurrent_streams(
             static_cast<int32_t>(v));
       },
       1, 100, "[1, 100]"},
      {"limits.maxConnections",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_max_connections(static_cast<int32_t>(v));
       },
       1, 100000, "[1, 100000]"},
      {"limits.maxConnectionsPerPeer",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_max_connections_per_peer(
             static_cast<int32_t>(v));
       },
       1, 100000, "[1, 100000]"},
      {"limits.healthMaxConnections",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_health_max_connections(
             static_cast<int32_t>(v));
       },
       1, 10000, "[1, 10000]"},
      {"limits.healthMaxConnectionsPerPeer",
       [](v1::BrokerConfig& c, int64_t v) {
         c.mutable_limits()->set_health_max_connections_per_peer(
             static_cast<int32_t>(v));
       },
       1, 10000, "[1, 10000]"},
  };
  for (const IntField& f : fields) {
    SCOPED_TRACE(f.path);
    v1::BrokerConfig config = Good();
    f.set(config, f.min);
    EXPECT_OK(ValidateConfig(config));
    f.set(config, f.max);
    EXPECT_OK(ValidateConfig(config));
    for (int64_t bad : {f.min - 1, f.max + 1, int64_t{0}, int64_t{-1}}) {
      SCOPED_TRACE(bad);
      f.set(config, bad);
      ExpectOnlyProblemAt(config, f.path,
                          absl::StrCat("must be in ", f.range, ", got "));
    }
  }
}

TEST_F(LimitsValidationTest, AbsentLimitsAreValid) {
  v1::BrokerConfig config = Good();
  config.clear_limits();
  config.mutable_renewal()->clear_min_token_lifetime();
  config.mutable_renewal()->clear_rejected_token_min_interval();
  EXPECT_OK(ValidateConfig(config));
}

TEST_F(LimitsValidationTest, EveryLimitProblemIsReportedAtOnce) {
  v1::BrokerConfig config = Good();
  config.mutable_limits()->set_memory_bytes(1);
  config.mutable_limits()->set_max_concurrent_streams(0);
  *config.mutable_limits()->mutable_handshake_timeout() = Dur(0);
  EXPECT_THAT(
      ::treezor::broker::testing::Lines(ValidateConfig(config)),
      ::testing::ElementsAre(
          ::testing::StartsWith("config: limits.handshakeTimeout: "),
          ::testing::StartsWith("config: limits.memoryBytes: must be in "
                                "[16777216 (16 MiB), 4294967296 (4 GiB)], "
                                "got 1"),
          ::testing::StartsWith("config: limits.maxConcurrentStreams: ")));
}

}  // namespace
}  // namespace treezor::broker
