// ValidateConfig: the `renewal` and `upstream` sections
// (config_validator_tuning.cc).
#include "server/config_validator.h"

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

using ::treezor::broker::testing::ConfigFixture;
using ::treezor::broker::testing::Dur;

class TuningValidationTest : public ConfigFixture {};

TEST_F(TuningValidationTest, RenewRemainingFractionInOpenUnitInterval) {
  for (double bad : {0.0, 1.0, -0.5, 1.5}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_renewal()->set_renew_remaining_fraction(bad);
    ExpectOnlyProblemAt(config, "renewal.renewRemainingFraction",
                        "must be in (0, 1)");
  }
}

TEST_F(TuningValidationTest, JitterFractionBelowRenewRemainingFraction) {
  for (double bad : {-0.01, 0.3, 0.5}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_renewal()->set_jitter_fraction(bad);
    ExpectOnlyProblemAt(config, "renewal.jitterFraction",
                        "must be in [0, renewRemainingFraction (0.3))");
  }
}

TEST_F(TuningValidationTest, DefaultJitterAgainstASmallRenewFractionBlamesTheField) {
  v1::BrokerConfig config = Good();
  config.mutable_renewal()->clear_jitter_fraction();
  config.mutable_renewal()->set_renew_remaining_fraction(0.04);
  ExpectOnlyProblemAt(config, "renewal.renewRemainingFraction",
                      "jitterFraction (0.05, the default)");
}

TEST_F(TuningValidationTest, MinRemainingFractionInHalfOpenUnitInterval) {
  v1::BrokerConfig config = Good();
  config.mutable_renewal()->set_min_remaining_fraction(1.0);
  ExpectOnlyProblemAt(config, "renewal.minRemainingFraction",
                      "must be in [0, 1)");
}

TEST_F(TuningValidationTest, MinRemainingNotNegative) {
  v1::BrokerConfig config = Good();
  *config.mutable_renewal()->mutable_min_remaining() = Dur(-1);
  ExpectOnlyProblemAt(config, "renewal.minRemaining", "must not be negative");
}

TEST_F(TuningValidationTest, RenewalDurationsMustBePositive) {
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

TEST_F(TuningValidationTest, InitialBackoffMustBePositive) {
  v1::BrokerConfig config = Good();
  *config.mutable_renewal()->mutable_initial_backoff() = Dur(0, -1000);
  ExpectOnlyProblemAt(config, "renewal.initialBackoff", "must be positive");
}

TEST_F(TuningValidationTest, MaxBackoffNotBelowInitialBackoff) {
  v1::BrokerConfig config = Good();
  *config.mutable_renewal()->mutable_max_backoff() = Dur(0, 100'000'000);
  ExpectOnlyProblemAt(config, "renewal.maxBackoff",
                      "maxBackoff (100ms) must not be less than "
                      "initialBackoff (500ms)");
}

TEST_F(TuningValidationTest, InitialBackoffAboveDefaultMaxBackoffBlamesInitialBackoff) {
  v1::BrokerConfig config = Good();
  config.mutable_renewal()->clear_max_backoff();
  *config.mutable_renewal()->mutable_initial_backoff() = Dur(120);
  ExpectOnlyProblemAt(config, "renewal.initialBackoff",
                      "maxBackoff (1m, the default)");
}

TEST_F(TuningValidationTest, MaxConcurrentRequestsInRange) {
  for (int bad : {0, -1, 1025}) {
    SCOPED_TRACE(bad);
    v1::BrokerConfig config = Good();
    config.mutable_upstream()->set_max_concurrent_requests(bad);
    ExpectOnlyProblemAt(config, "upstream.maxConcurrentRequests",
                        "must be in [1, 1024]");
  }
}

TEST_F(TuningValidationTest, UpstreamTimeoutsMustBePositive) {
  v1::BrokerConfig config = Good();
  *config.mutable_upstream()->mutable_connect_timeout() = Dur(0);
  ExpectOnlyProblemAt(config, "upstream.connectTimeout", "must be positive");
  config = Good();
  *config.mutable_upstream()->mutable_request_timeout() = Dur(-3);
  ExpectOnlyProblemAt(config, "upstream.requestTimeout",
                      "must be positive, got -3s");
}

// --- upstream timeouts (issue 10 item 9) ----------------------------------

TEST_F(TuningValidationTest, ConnectTimeoutNotAboveRequestTimeout) {
  v1::BrokerConfig config = Good();
  *config.mutable_upstream()->mutable_connect_timeout() = Dur(20);
  ExpectOnlyProblemAt(config, "upstream.connectTimeout",
                      "connectTimeout (20s) must not exceed requestTimeout "
                      "(10s)");
  *config.mutable_upstream()->mutable_connect_timeout() = Dur(10);
  EXPECT_OK(ValidateConfig(config));
}

TEST_F(TuningValidationTest, ConnectTimeoutAboveTheDefaultRequestTimeout) {
  v1::BrokerConfig config = Good();
  config.mutable_upstream()->clear_request_timeout();
  *config.mutable_upstream()->mutable_connect_timeout() = Dur(20);
  ExpectOnlyProblemAt(config, "upstream.connectTimeout",
                      "must not exceed requestTimeout (15s, the default)");
}

TEST_F(TuningValidationTest, RequestTimeoutBelowTheDefaultConnectTimeout) {
  v1::BrokerConfig config = Good();
  config.mutable_upstream()->clear_connect_timeout();
  *config.mutable_upstream()->mutable_request_timeout() = Dur(3);
  ExpectOnlyProblemAt(config, "upstream.requestTimeout",
                      "connectTimeout (5s, the default) must not exceed "
                      "requestTimeout (3s)");
}

TEST_F(TuningValidationTest, RequestTimeoutAtMostTwoMinutes) {
  v1::BrokerConfig config = Good();
  *config.mutable_upstream()->mutable_request_timeout() = Dur(120, 1);
  ExpectOnlyProblemAt(config, "upstream.requestTimeout",
                      "must be at most 2m, got 2m0.000000001s");
  *config.mutable_upstream()->mutable_request_timeout() = Dur(120);
  EXPECT_OK(ValidateConfig(config));
}

}  // namespace
}  // namespace treezor::broker
