// ResolveSettings: the documented defaults, and the config's values over them.
#include "server/settings_resolver.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/config_fixture.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::treezor::broker::testing::ConfigFixture;

class SettingsResolverTest : public ConfigFixture {};

TEST(SettingsResolver, AbsentSectionsTakeTheDocumentedDefaults) {
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

// The defaults docs/CONFIG.md ("Limits") documents.
TEST(SettingsResolver, AbsentLimitsTakeTheDocumentedDefaults) {
  const BrokerSettings settings = ResolveSettings(v1::BrokerConfig());
  EXPECT_EQ(settings.renewal.min_token_lifetime, absl::Seconds(5));
  EXPECT_EQ(settings.renewal.rejected_token_min_interval, absl::Seconds(10));
  const LimitsSettings& l = settings.limits;
  EXPECT_EQ(l.handshake_timeout, absl::Seconds(5));
  EXPECT_EQ(l.memory_bytes, 100 * 1024 * 1024);
  EXPECT_EQ(l.max_concurrent_streams, 100);
  EXPECT_EQ(l.max_connection_age, absl::Minutes(30));
  EXPECT_EQ(l.max_connection_age_grace, absl::Seconds(30));
  EXPECT_EQ(l.max_connection_idle, absl::Minutes(5));
  EXPECT_EQ(l.min_ping_interval, absl::Seconds(60));
  EXPECT_EQ(l.max_watch_streams_per_caller, 32);
  EXPECT_EQ(l.max_scope_sets_per_tenant, 64);
  EXPECT_EQ(l.max_scope_sets_per_caller, 16);
  EXPECT_EQ(l.health_memory_bytes, 4 * 1024 * 1024);
  EXPECT_EQ(l.health_max_concurrent_streams, 4);
  EXPECT_EQ(l.health_max_connection_idle, absl::Seconds(30));
  EXPECT_EQ(l.max_connections, 1000);
  EXPECT_EQ(l.max_connections_per_peer, 250);
  EXPECT_EQ(l.health_max_connections, 64);
  EXPECT_EQ(l.health_max_connections_per_peer, 16);
}

TEST(SettingsResolver, PartialSectionsKeepDefaultsForAbsentFields) {
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

TEST_F(SettingsResolverTest, ConfiguredValuesOverrideDefaults) {
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
  EXPECT_EQ(r.min_token_lifetime, absl::Seconds(3));
  EXPECT_EQ(r.rejected_token_min_interval, absl::Seconds(20));
  const LimitsSettings& l = settings.limits;
  EXPECT_EQ(l.handshake_timeout, absl::Seconds(2));
  EXPECT_EQ(l.memory_bytes, 64 * 1024 * 1024);
  EXPECT_EQ(l.max_concurrent_streams, 50);
  EXPECT_EQ(l.max_connection_age, absl::Minutes(10));
  EXPECT_EQ(l.max_connection_age_grace, absl::Seconds(10));
  EXPECT_EQ(l.max_connection_idle, absl::Minutes(2));
  EXPECT_EQ(l.min_ping_interval, absl::Seconds(20));
  EXPECT_EQ(l.max_watch_streams_per_caller, 8);
  EXPECT_EQ(l.max_scope_sets_per_tenant, 32);
  EXPECT_EQ(l.max_scope_sets_per_caller, 4);
  EXPECT_EQ(l.health_memory_bytes, 2 * 1024 * 1024);
  EXPECT_EQ(l.health_max_concurrent_streams, 2);
  EXPECT_EQ(l.health_max_connection_idle, absl::Seconds(10));
  EXPECT_EQ(l.max_connections, 500);
  EXPECT_EQ(l.max_connections_per_peer, 100);
  EXPECT_EQ(l.health_max_connections, 32);
  EXPECT_EQ(l.health_max_connections_per_peer, 8);
}

}  // namespace
}  // namespace treezor::broker
