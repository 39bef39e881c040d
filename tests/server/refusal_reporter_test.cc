#include "server/refusal_reporter.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/settings.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/log_capture.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using ::treezor::broker::testing::FakeClock;
using ::treezor::broker::testing::LogCapture;
using Verdict = ConnectionAdmission::Verdict;

GrpcServerOptions Options() {
  LimitsSettings limits;
  limits.max_connections = 7;
  limits.max_connections_per_peer = 3;
  return MtlsServerOptions(limits);
}

// A flood of refusals is one warning per interval, with the counts since the
// last one; every refusal is counted by the metric.
TEST(RefusalReporter, WarnsAtMostOncePerIntervalWithTheCountsSinceTheLast) {
  LogCapture log;
  FakeClock clock;
  BrokerMetrics metrics(&clock);
  auto refused =
      RefusalReporter(&metrics, BrokerMetrics::Port::kMtls, Options(), &clock);

  refused(Verdict::kPortFull, "10.0.0.1");
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0],
              HasSubstr(R"("msg":"connections refused","port":"mtls",)"
                        R"("last_peer":"10.0.0.1","limit":"limits.maxConnections",)"
                        R"("max_connections":"7","max_connections_per_peer":"3",)"
                        R"("refused_at_port_limit":"1","refused_at_peer_limit":"0")"));

  // A flood within the interval: nothing more in the log.
  for (int i = 0; i < 500; ++i) {
    refused(i % 5 == 0 ? Verdict::kPeerFull : Verdict::kPortFull, "10.0.0.2");
  }
  clock.Advance(kRefusalWarningInterval - absl::Milliseconds(1));
  refused(Verdict::kPeerFull, "10.0.0.3");
  EXPECT_EQ(log.lines().size(), 1u);

  // The interval over: one warning with what was refused since the first.
  clock.Advance(absl::Milliseconds(1));
  refused(Verdict::kPeerFull, "10.0.0.4");
  ASSERT_EQ(log.lines().size(), 2u);
  EXPECT_THAT(log.lines()[1],
              HasSubstr(R"("last_peer":"10.0.0.4",)"
                        R"("limit":"limits.maxConnectionsPerPeer",)"));
  EXPECT_THAT(log.lines()[1],
              HasSubstr(R"("refused_at_port_limit":"400","refused_at_peer_limit":"102")"));

  // Counts start again from zero after each warning.
  clock.Advance(kRefusalWarningInterval);
  refused(Verdict::kPortFull, "10.0.0.5");
  ASSERT_EQ(log.lines().size(), 3u);
  EXPECT_THAT(log.lines()[2],
              HasSubstr(R"("refused_at_port_limit":"1","refused_at_peer_limit":"0")"));

  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr(R"(treezor_broker_connections_refused_total{limit="port",port="mtls"} 402)"));
  EXPECT_THAT(text, HasSubstr(R"(treezor_broker_connections_refused_total{limit="peer",port="mtls"} 102)"));
  EXPECT_THAT(text, HasSubstr(R"(treezor_broker_connections_refused_total{limit="port",port="health"} 0)"));
}

}  // namespace
}  // namespace treezor::broker
