#include "server/rpc_audit.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/log_capture.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::FakeClock;
using testing::LogCapture;

CachedToken Token(std::string fingerprint) {
  CachedToken token;
  token.token.access_token = "eyJhbGciOiJIUzI1NiJ9.secret-token.sig";
  token.fingerprint = std::move(fingerprint);
  token.version = 3;
  return token;
}

TEST(RpcAudit, FinishWritesOneAuditLineWithLatencyFromTheClock) {
  LogCapture log;
  FakeClock clock;
  RpcAudit audit(BrokerMetrics::Rpc::kGetToken, &clock, nullptr);
  PeerIdentity peer;
  peer.uri_sans = {"spiffe://corp/payments"};
  peer.common_name = "payments";
  audit.SetCaller(peer);
  audit.SetIdentity({IdentityKind::kUri, "spiffe://corp/payments"});
  audit.SetTenant("acme");
  audit.SetScopes(ScopeSet::FromList({"admin", "read_all"}));
  audit.SetToken(Token("3f2a9c01b7e4"));
  clock.Advance(absl::Milliseconds(250));
  const grpc::Status status = audit.Finish(absl::OkStatus());
  EXPECT_TRUE(status.ok());
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0],
              HasSubstr(R"("msg":"audit","rpc":"GetToken",)"
                        R"("caller":"uri:spiffe://corp/payments,cn:payments",)"
                        R"("identity":"spiffe://corp/payments",)"
                        R"("identity_kind":"uri",)"
                        R"("tenant":"acme","scopes":"admin read_all",)"
                        R"("outcome":"OK","latency_us":"250000",)"
                        R"("token_fp":"3f2a9c01b7e4"})"));
  EXPECT_THAT(log.lines()[0], Not(HasSubstr("secret-token")));
}

TEST(RpcAudit, FinishConvertsTheStatusAndNamesTheError) {
  LogCapture log;
  FakeClock clock;
  RpcAudit audit(BrokerMetrics::Rpc::kRefreshToken, &clock, nullptr);
  const grpc::Status status = audit.Finish(
      absl::PermissionDeniedError("caller is not allowed to use BrokerAdmin"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), "caller is not allowed to use BrokerAdmin");
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0],
              HasSubstr(R"("rpc":"RefreshToken","caller":"",)"
                        R"("outcome":"PERMISSION_DENIED","latency_us":"0",)"
                        R"("error":"caller is not allowed to use BrokerAdmin"})"));
}

TEST(RpcAudit, OnlyTheFirstFinishIsAuditedAndCounted) {
  LogCapture log;
  FakeClock clock;
  BrokerMetrics metrics(&clock);
  RpcAudit audit(BrokerMetrics::Rpc::kWatchToken, &clock, &metrics);
  audit.AddField({"tokens_sent", 2});
  EXPECT_EQ(audit.Finish(absl::CancelledError("caller hung up")).error_code(),
            grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(audit.finished());
  // A second Finish still converts, but writes and counts nothing.
  EXPECT_EQ(audit.Finish(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0], HasSubstr(R"("tokens_sent":"2"})"));
  const std::string rendered = metrics.Render();
  EXPECT_THAT(rendered, HasSubstr(R"(treezor_broker_rpcs_total{code="CANCELLED",method="WatchToken"} 1)"));
  EXPECT_THAT(rendered, HasSubstr(R"(treezor_broker_rpcs_total{code="UNAVAILABLE",method="WatchToken"} 0)"));
}

TEST(RpcAudit, EventsAreAuditedWhenTheyHappenWithoutFinishing) {
  LogCapture log;
  FakeClock clock;
  BrokerMetrics metrics(&clock);
  RpcAudit audit(BrokerMetrics::Rpc::kWatchToken, &clock, &metrics);
  PeerIdentity peer;
  peer.dns_sans = {"cards.internal"};
  audit.SetCaller(peer);
  audit.SetIdentity({IdentityKind::kDns, "cards.internal"});
  audit.SetTenant("globex");
  audit.SetScopes(ScopeSet::FromList({"read_only"}));
  audit.Event("stream_started");
  const CachedToken token = Token("3f2a9c01b7e4");
  audit.Event("token_sent", &token);
  EXPECT_FALSE(audit.finished());
  ASSERT_EQ(log.lines().size(), 2u);
  EXPECT_THAT(log.lines()[0],
              HasSubstr(R"("rpc":"WatchToken","caller":"dns:cards.internal",)"
                        R"("identity":"cards.internal","identity_kind":"dns",)"
                        R"("tenant":"globex","scopes":"read_only",)"
                        R"("event":"stream_started"})"));
  EXPECT_THAT(log.lines()[1],
              HasSubstr(R"("scopes":"read_only","event":"token_sent",)"
                        R"("token_fp":"3f2a9c01b7e4","version":"3"})"));
  EXPECT_THAT(log.lines()[1], Not(HasSubstr("secret-token")));
  // Events count no RPC; once finished, nothing more is written.
  EXPECT_THAT(metrics.Render(),
              HasSubstr(R"(treezor_broker_rpcs_total{code="OK",method="WatchToken"} 0)"));
  audit.Finish(absl::OkStatus());
  audit.Event("token_sent", &token);
  EXPECT_EQ(log.lines().size(), 3u);
}

TEST(RpcAudit, EveryRequestFieldIsBoundedSoALineStaysUnderOneKib) {
  LogCapture log;
  FakeClock clock;
  RpcAudit audit(BrokerMetrics::Rpc::kGetToken, &clock, nullptr);
  PeerIdentity peer;
  for (int i = 0; i < 100; ++i) {
    peer.dns_sans.push_back(absl::StrCat(std::string(200, 'd'), i));
  }
  peer.common_name = std::string(1000, 'c');
  audit.SetCaller(peer);
  audit.SetIdentity({IdentityKind::kDns, std::string(1000, 'i')});
  audit.SetTenant(std::string(10000, '\x01'));  // 6 bytes each, escaped
  google::protobuf::RepeatedPtrField<std::string> scopes;
  for (int i = 0; i < 5000; ++i) *scopes.Add() = std::string(100, '"');
  audit.SetScopes(scopes);
  audit.Finish(absl::InvalidArgumentError(std::string(100000, '\n')));
  ASSERT_EQ(log.lines().size(), 1u);
  const std::string line = log.lines()[0];
  EXPECT_LT(line.size(), 1024u) << line;
  EXPECT_THAT(line, HasSubstr(R"("caller":"dns:ddd)"));
  EXPECT_THAT(line, HasSubstr(R"(...","caller_names":"101")"));
  EXPECT_THAT(line, HasSubstr(R"(...","scope_count":"5000")"));
  EXPECT_THAT(line, HasSubstr(R"("error":"\n\n)"));
}

TEST(RpcAudit, ShortFieldsAreLoggedWhole) {
  LogCapture log;
  FakeClock clock;
  RpcAudit audit(BrokerMetrics::Rpc::kGetToken, &clock, nullptr);
  google::protobuf::RepeatedPtrField<std::string> scopes;
  *scopes.Add() = "read_only";
  *scopes.Add() = "admin";
  audit.SetScopes(scopes);  // as requested: not canonicalised
  audit.Finish(absl::OkStatus());
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0], HasSubstr(R"("scopes":"read_only admin","outcome")"));
  EXPECT_THAT(log.lines()[0], Not(HasSubstr("scope_count")));
  EXPECT_THAT(log.lines()[0], Not(HasSubstr("caller_names")));
}

TEST(RpcAudit, GetTokenLatencyIsRecordedFromTheInjectedClock) {
  LogCapture log;
  FakeClock clock;
  BrokerMetrics metrics(&clock);
  RpcAudit audit(BrokerMetrics::Rpc::kGetToken, &clock, &metrics);
  clock.Advance(absl::Seconds(3));
  audit.Finish(absl::OkStatus());
  const std::string rendered = metrics.Render();
  EXPECT_THAT(rendered, HasSubstr("treezor_broker_get_token_latency_seconds_sum 3"));
  EXPECT_THAT(rendered, HasSubstr(R"(treezor_broker_rpcs_total{code="OK",method="GetToken"} 1)"));
}

}  // namespace
}  // namespace treezor::broker
