// TokenClient against the real broker (BrokerHarness: loopback, real
// certificates, the Treezor double). The broker and the client share the
// harness's fake clock, so renewals and expiry are driven by the test.
// Broker RPCs are counted on the server side, from its audit lines (one per
// GetToken, written before the answer is sent).
#include "client/token_client.h"

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "tests/testing/broker_harness.h"
#include "tests/testing/status_matchers.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::treezor::broker::BrokerServer;
using ::treezor::broker::testing::BrokerHarness;
using ::treezor::broker::testing::LogCapture;
using ::treezor::broker::testing::StatusIs;
using Kind = TokenClientEvent::Kind;

constexpr absl::Duration kWait = absl::Seconds(10);

// The client's events, for tests to wait on what they assert.
class EventLog {
 public:
  std::function<void(const TokenClientEvent&)> Listener() {
    return [this](const TokenClientEvent& e) {
      MutexLock lock(&mu_);
      events_.push_back(e);
      cv_.SignalAll();
    };
  }
  int Count(Kind kind) const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return CountLocked(kind);
  }
  // True once `n` events of `kind` have happened.
  bool WaitFor(Kind kind, int n = 1) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + kWait,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return CountLocked(kind) >= n;
                         });
  }

 private:
  int CountLocked(Kind kind) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int n = 0;
    for (const auto& e : events_) n += e.kind == kind ? 1 : 0;
    return n;
  }
  mutable Mutex mu_;
  CondVar cv_;
  std::vector<TokenClientEvent> events_ ABSL_GUARDED_BY(mu_);
};

class TokenClientTest : public ::testing::Test {
 protected:
  void StartBroker(BrokerHarness::Options options = {}) {
    harness_ = std::make_unique<BrokerHarness>(std::move(options));
    ASSERT_OK(harness_->Start());
    target_ = harness_->target();
  }

  TokenClientOptions Options(const std::string& caller = "payments") {
    const auto files = harness_->CallerFiles(caller);
    TokenClientOptions o;
    o.connection.address = target_;
    o.connection.ca_file = harness_->internal_ca_file();
    o.connection.cert_file = files.cert_file;
    o.connection.key_file = files.key_file;
    o.clock = &harness_->clock();
    o.initial_backoff = absl::Milliseconds(20);
    o.max_backoff = absl::Milliseconds(200);
    o.on_event = events_.Listener();
    // Tests move the clock by the hour; IdleEntriesAreDropped sets its own.
    o.idle_timeout = absl::InfiniteDuration();
    return o;
  }

  void NewClient(TokenClientOptions options) {
    auto client = TokenClient::Create(std::move(options));
    ASSERT_OK(client);
    client_ = *std::move(client);
  }

  // GetToken RPCs the broker(s) answered so far.
  int GetTokenRpcs() const {
    int n = 0;
    for (const std::string& line : log_.lines()) {
      if (absl::StrContains(line, R"("msg":"audit")") &&
          absl::StrContains(line, R"("rpc":"GetToken")")) {
        ++n;
      }
    }
    return n;
  }

  // Stops the harness's broker (if still running) and starts a new one on
  // the same port with the same config and clock: every connection breaks.
  // The harness's clock must not be advanced afterwards (its listener still
  // points at the stopped broker).
  void RestartBroker() {
    harness_->StopBroker();
    if (replacement_ != nullptr) replacement_->Shutdown();
    replacement_.reset();
    auto config = broker::LoadConfigFile(harness_->config_path());
    ASSERT_OK(config);
    config->set_listen_address(target_);
    auto started = BrokerServer::Start(*config, {.clock = &harness_->clock()});
    ASSERT_OK(started);
    replacement_ = *std::move(started);
  }

  void TearDown() override {
    client_.reset();
    if (replacement_ != nullptr) replacement_->Shutdown();
  }

  LogCapture log_;
  EventLog events_;
  std::unique_ptr<BrokerHarness> harness_;
  std::string target_;
  std::unique_ptr<BrokerServer> replacement_;
  std::unique_ptr<TokenClient> client_;
};

TEST_F(TokenClientTest, CacheHitCostsNoRpc) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token first,
                       client_->GetToken("acme", {"read_all", "admin"}));
  EXPECT_EQ(first.token_type, "Bearer");
  EXPECT_EQ(first.tenant, "acme");
  EXPECT_THAT(first.scopes, ElementsAre("admin", "read_all"));
  EXPECT_EQ(first.expires_at,
            absl::FromUnixSeconds(absl::ToUnixSeconds(harness_->clock().Now() +
                                                      absl::Hours(1))));
  EXPECT_EQ(GetTokenRpcs(), 1);
  for (int i = 0; i < 100; ++i) {
    // Same set in another order and with duplicates: the same entry.
    ASSERT_OK_AND_ASSIGN(
        Token again, client_->GetToken("acme", {"admin", "read_all", "admin"}));
    EXPECT_EQ(again.access_token, first.access_token);
  }
  EXPECT_EQ(GetTokenRpcs(), 1);
  // Another set is another entry.
  ASSERT_OK(client_->GetToken("acme", {"admin"}));
  EXPECT_EQ(GetTokenRpcs(), 2);
}

TEST_F(TokenClientTest, AuthorizationHeaderIsBearerAndTheToken) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token token, client_->GetToken("acme"));
  ASSERT_OK_AND_ASSIGN(std::string header, client_->AuthorizationHeader("acme"));
  EXPECT_EQ(header, "Bearer " + token.access_token);
  EXPECT_THAT(token.scopes, ElementsAre("read_write"));  // acme's default
}

TEST_F(TokenClientTest, SharedTokenIsTheCachedTokenAndOutlivesItsReplacement) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Token> shared,
                       client_->GetSharedToken("acme", {"read_all"}));
  ASSERT_NE(shared, nullptr);
  ASSERT_OK_AND_ASSIGN(Token copy, client_->GetToken("acme", {"read_all"}));
  EXPECT_EQ(shared->access_token, copy.access_token);
  EXPECT_EQ(shared->tenant, "acme");
  EXPECT_THAT(shared->scopes, ElementsAre("read_all"));
  // A hit hands out the very same Token, not a copy.
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Token> again,
                       client_->GetSharedToken("acme", {"read_all"}));
  EXPECT_EQ(again.get(), shared.get());
  EXPECT_EQ(GetTokenRpcs(), 1);
  // After the cache replaced it, the held Token is still intact.
  const std::string held = shared->access_token;
  ASSERT_OK_AND_ASSIGN(Token replacement,
                       client_->ReportRejected("acme", {"read_all"}, held));
  ASSERT_NE(replacement.access_token, held);
  EXPECT_EQ(shared->access_token, held);
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Token> now,
                       client_->GetSharedToken("acme", {"read_all"}));
  EXPECT_EQ(now->access_token, replacement.access_token);
}

TEST_F(TokenClientTest, PushedRenewalReplacesTheCachedTokenBeforeItExpires) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token first, client_->GetToken("acme"));
  ASSERT_TRUE(events_.WaitFor(Kind::kWatchConnected));
  // The broker renews at 75 % ± 5 % of the hour: by minute 48.
  harness_->clock().Advance(absl::Minutes(49));
  ASSERT_TRUE(events_.WaitFor(Kind::kTokenPushed));
  ASSERT_LT(harness_->clock().Now(), first.expires_at);
  ASSERT_OK_AND_ASSIGN(Token renewed, client_->GetToken("acme"));
  EXPECT_NE(renewed.access_token, first.access_token);
  EXPECT_GT(renewed.expires_at, first.expires_at);
  EXPECT_EQ(GetTokenRpcs(), 1);  // only the first call's
}

TEST_F(TokenClientTest, StreamBreakFallsBackToGetTokenThenReconnects) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token first, client_->GetToken("acme"));
  ASSERT_TRUE(events_.WaitFor(Kind::kWatchConnected));

  // The broker ends every stream and refuses new ones; GetToken still works.
  harness_->broker().token_service().EndWatches();
  ASSERT_TRUE(events_.WaitFor(Kind::kWatchBroken));
  // Until two margins (2 min) before expiry the cached token is served.
  harness_->clock().Advance(absl::Minutes(50));  // the broker renews
  ASSERT_OK_AND_ASSIGN(Token cached, client_->GetToken("acme"));
  EXPECT_EQ(cached.access_token, first.access_token);
  EXPECT_EQ(GetTokenRpcs(), 1);
  // Then the client's reconnection attempts renew it with GetToken.
  harness_->clock().Advance(absl::Minutes(8) + absl::Seconds(30));
  ASSERT_TRUE(events_.WaitFor(Kind::kFallbackRefreshed));
  const int after_fallback = GetTokenRpcs();
  EXPECT_GE(after_fallback, 2);
  ASSERT_OK_AND_ASSIGN(Token renewed, client_->GetToken("acme"));
  EXPECT_NE(renewed.access_token, first.access_token);
  EXPECT_GT(renewed.expires_at, harness_->clock().Now() + absl::Minutes(30));

  // A restarted broker accepts streams again: the client reconnects and the
  // new broker's token arrives by push.
  RestartBroker();
  ASSERT_TRUE(events_.WaitFor(Kind::kWatchConnected, 2));
  ASSERT_TRUE(events_.WaitFor(Kind::kTokenPushed));
  const int rpcs = GetTokenRpcs();
  ASSERT_OK_AND_ASSIGN(Token pushed, client_->GetToken("acme"));
  EXPECT_NE(pushed.access_token, renewed.access_token);
  EXPECT_EQ(GetTokenRpcs(), rpcs);
}

TEST_F(TokenClientTest, ReportRejectedYieldsADifferentToken) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token first, client_->GetToken("acme", {"read_all"}));
  ASSERT_OK_AND_ASSIGN(
      Token replacement,
      client_->ReportRejected("acme", {"read_all"}, first.access_token));
  EXPECT_NE(replacement.access_token, first.access_token);
  EXPECT_EQ(GetTokenRpcs(), 2);
  // The cache now holds the replacement.
  ASSERT_OK_AND_ASSIGN(Token cached, client_->GetToken("acme", {"read_all"}));
  EXPECT_EQ(cached.access_token, replacement.access_token);
  EXPECT_EQ(GetTokenRpcs(), 2);
  // Reports of one entry within renewal.rejectedTokenMinInterval (10 s) get
  // the current token without a fetch: let the interval pass.
  harness_->clock().Advance(absl::Seconds(10));
  // Reporting by token alone finds its entry.
  ASSERT_OK_AND_ASSIGN(Token third,
                       client_->ReportRejected(replacement.access_token));
  EXPECT_NE(third.access_token, replacement.access_token);
  EXPECT_NE(third.access_token, first.access_token);
  EXPECT_THAT(client_->ReportRejected("never-issued"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("tenant")));
}

TEST_F(TokenClientTest, ConcurrentColdCallersShareOneRpc) {
  StartBroker();
  NewClient(Options());
  // The broker's fetch from Treezor is held, so the first caller's RPC stays
  // in flight while every other caller arrives.
  harness_->treezor().HoldRequests();
  constexpr int kCallers = 16;
  std::vector<absl::StatusOr<Token>> results(kCallers);
  std::atomic<int> calling{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      ++calling;
      results[i] = client_->GetToken("acme", {"read_all"});
    });
  }
  ASSERT_TRUE(harness_->treezor().WaitForHeld(1, kWait));
  while (calling < kCallers) std::this_thread::yield();
  harness_->treezor().ReleaseRequests();
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_OK(r);
    EXPECT_EQ(r->access_token, results[0]->access_token);
  }
  EXPECT_EQ(GetTokenRpcs(), 1);
}

TEST_F(TokenClientTest, DeadlineIsHonouredAndALongerWaiterCarriesOn) {
  StartBroker();
  NewClient(Options());
  harness_->treezor().HoldRequests();
  absl::StatusOr<Token> hasty;
  absl::Duration hasty_took;
  std::thread hasty_caller([&] {
    const absl::Time start = absl::Now();
    hasty = client_->GetToken("acme", {"legal"},
                              {.timeout = absl::Milliseconds(300)});
    hasty_took = absl::Now() - start;
  });
  ASSERT_TRUE(harness_->treezor().WaitForHeld(1, kWait));
  // A patient caller joins the same RPC.
  absl::StatusOr<Token> patient;
  std::thread patient_caller(
      [&] { patient = client_->GetToken("acme", {"legal"}); });
  hasty_caller.join();
  EXPECT_THAT(hasty, StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  EXPECT_GE(hasty_took, absl::Milliseconds(300));
  EXPECT_LT(hasty_took, absl::Seconds(5));
  // The first RPC died with its caller's deadline; the patient caller makes
  // its own and gets the token once Treezor answers.
  harness_->treezor().ReleaseRequests();
  patient_caller.join();
  ASSERT_OK(patient);
  EXPECT_THAT(patient->scopes, ElementsAre("legal"));
}

TEST_F(TokenClientTest, BrokerErrorsKeepTheirCodeAndMessage) {
  StartBroker();
  NewClient(Options());
  // The same call through a raw stub, for the broker's exact words.
  auto stub = broker::v1::TokenService::NewStub(harness_->Channel("payments"));
  grpc::ClientContext ctx;
  broker::v1::GetTokenRequest request;
  request.set_tenant("globex");
  broker::v1::GetTokenResponse response;
  const grpc::Status raw = stub->GetToken(&ctx, request, &response);
  ASSERT_EQ(raw.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(client_->GetToken("globex"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       raw.error_message()));
  EXPECT_THAT(client_->GetToken("acme", {"read all"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scopes")));
  EXPECT_THAT(client_->GetToken("acme", {}, {.min_ttl = absl::Hours(2)}),
              StatusIs(absl::StatusCode::kOutOfRange, ::testing::_));
  // A min_ttl the cached token satisfies costs nothing.
  ASSERT_OK(client_->GetToken("acme"));
  const int rpcs = GetTokenRpcs();
  ASSERT_OK(client_->GetToken("acme", {}, {.min_ttl = absl::Minutes(30)}));
  EXPECT_EQ(GetTokenRpcs(), rpcs);
}

TEST_F(TokenClientTest, UnreachableBrokerIsUnavailable) {
  StartBroker();
  TokenClientOptions options = Options();
  harness_->StopBroker();
  NewClient(options);
  EXPECT_THAT(client_->GetToken("acme"),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST_F(TokenClientTest, RotatedCertificateFilesAreUsedByNewConnections) {
  StartBroker();
  broker::testing::TempDir dir;
  const std::string cert = dir.File("caller.crt");
  const std::string key = dir.File("caller.key");
  auto install = [&](const std::string& caller) {
    const auto files = harness_->CallerFiles(caller);
    // Key first, as cert-manager and CertFactory do; each an atomic rename.
    broker::testing::WriteFileOrDie(
        key, broker::testing::ReadFileOrDie(files.key_file));
    broker::testing::WriteFileOrDie(
        cert, broker::testing::ReadFileOrDie(files.cert_file));
  };
  install("payments");
  TokenClientOptions options = Options();
  options.connection.cert_file = cert;
  options.connection.key_file = key;
  options.connection.certificate_refresh_interval = absl::Seconds(1);
  options.watch = false;
  NewClient(options);
  ASSERT_OK(client_->GetToken("acme"));

  // The files now hold the "intruder" identity (same CA, not in the policy).
  install("intruder");
  // gRPC's file watcher runs on real time (1 s here); a connection keeps the
  // identity it was opened with, so new ones are forced by restarting the
  // broker until the new identity shows.
  absl::Status status;
  for (int attempt = 0; attempt < 10; ++attempt) {
    absl::SleepFor(absl::Seconds(1));
    RestartBroker();
    status = client_->GetToken("acme", {absl::StrCat("scope", attempt)})
                 .status();
    if (status.code() != absl::StatusCode::kOk) break;
  }
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
}

TEST_F(TokenClientTest, IdleEntriesAreDroppedWithTheirStreams) {
  StartBroker();
  TokenClientOptions options = Options();
  options.idle_timeout = absl::Minutes(10);
  NewClient(options);
  ASSERT_OK(client_->GetToken("acme"));
  ASSERT_TRUE(events_.WaitFor(Kind::kWatchConnected));
  harness_->clock().Advance(absl::Minutes(11));
  ASSERT_TRUE(events_.WaitFor(Kind::kEvicted));
  ASSERT_OK(client_->GetToken("acme"));  // a miss again
  EXPECT_EQ(GetTokenRpcs(), 2);
}

TEST(TokenClientCreateTest, NamesTheBadFile) {
  broker::testing::TempDir dir;
  TokenClientOptions options;
  options.connection = {.address = "127.0.0.1:1",
                        .ca_file = dir.File("missing-ca.crt"),
                        .cert_file = dir.File("c.crt"),
                        .key_file = dir.File("c.key")};
  EXPECT_THAT(TokenClient::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing-ca.crt")));
  options.connection.address = "";
  EXPECT_THAT(TokenClient::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("address")));
}

TEST(TokenClientCreateTest, KeyMustMatchTheCertificate) {
  BrokerHarness h;
  ASSERT_OK(h.Start());
  TokenClientOptions options;
  options.connection = {.address = h.target(),
                        .ca_file = h.internal_ca_file(),
                        .cert_file = h.CallerFiles("payments").cert_file,
                        .key_file = h.CallerFiles("cards").key_file};
  EXPECT_THAT(TokenClient::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("does not match")));
}

}  // namespace
}  // namespace treezor::client
