// TokenClient against the real broker (BrokerHarness: loopback, real
// certificates, the Treezor double). The broker and the client share the
// harness's fake clock, so renewals and expiry are driven by the test.
// Broker RPCs are counted on the server side, from its audit lines (one per
// GetToken, written before the answer is sent).
#include "client/token_client.h"

#include <atomic>
#include <functional>
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
  std::vector<TokenClientEvent> Events(Kind kind) const
      ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    std::vector<TokenClientEvent> out;
    for (const auto& e : events_) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
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

// A thread that runs what it is given, one task at a time, for tests in
// which the same thread must call before and after something happens (a
// cache hit is answered from the calling thread's own snapshot).
class TaskThread {
 public:
  TaskThread() : thread_([this] { Loop(); }) {}
  ~TaskThread() {
    {
      MutexLock lock(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    thread_.join();
  }

  // Runs `task` on the thread and returns when it is done.
  void Run(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    task_ = std::move(task);
    const int n = ++submitted_;
    cv_.SignalAll();
    cv_.WaitUntil(&mu_, absl::InfiniteFuture(),
                  [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                    return finished_ == n;
                  });
  }

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_) {
    while (true) {
      std::function<void()> task;
      {
        MutexLock lock(&mu_);
        cv_.WaitUntil(&mu_, absl::InfiniteFuture(),
                      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                        return stop_ || finished_ < submitted_;
                      });
        if (finished_ == submitted_) return;  // stopped
        task = std::move(task_);
      }
      task();
      MutexLock lock(&mu_);
      ++finished_;
      cv_.SignalAll();
    }
  }

  Mutex mu_;
  CondVar cv_;
  std::function<void()> task_ ABSL_GUARDED_BY(mu_);
  int submitted_ ABSL_GUARDED_BY(mu_) = 0;
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
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

// A cache hit is answered from the calling thread's snapshot of the entry,
// without the lock, until the cache changes. These tests make one thread
// hit (so it holds a snapshot), change the token by every means the broker
// has, and ask on that same thread again, at the same fake instant (so the
// snapshot is not retaken for its age: only the change can invalidate it).

TEST_F(TokenClientTest, APushedRenewalIsNeverAnsweredFromAThreadsOldSnapshot) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token first, client_->GetToken("acme"));
  ASSERT_TRUE(events_.WaitFor(Kind::kWatchConnected));
  // The broker's renewal (due by minute 48) is held at Treezor, so the
  // thread can hit the old token at the renewal's own fake instant.
  harness_->treezor().HoldRequests();
  harness_->clock().Advance(absl::Minutes(49));
  ASSERT_TRUE(harness_->treezor().WaitForHeld(1, kWait));
  TaskThread hitter;
  std::vector<std::string> seen;
  std::vector<std::shared_ptr<const Token>> shared_seen;
  auto hit = [&] {
    hitter.Run([&] {
      for (int i = 0; i < 3; ++i) {  // a locked hit, then snapshot hits
        absl::StatusOr<Token> token = client_->GetToken("acme");
        absl::StatusOr<std::shared_ptr<const Token>> shared =
            client_->GetSharedToken("acme");
        seen.push_back(token.ok() ? token->access_token
                                  : token.status().ToString());
        shared_seen.push_back(shared.ok() ? *shared : nullptr);
      }
    });
  };
  hit();
  ASSERT_EQ(seen.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(seen[i], first.access_token);
    ASSERT_NE(shared_seen[i], nullptr);
    EXPECT_EQ(shared_seen[i]->access_token, first.access_token);
  }

  harness_->treezor().ReleaseRequests();
  ASSERT_TRUE(events_.WaitFor(Kind::kTokenPushed));
  seen.clear();
  shared_seen.clear();
  hit();  // same thread, same fake instant
  ASSERT_EQ(seen.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(seen[i], first.access_token) << "call " << i;
    ASSERT_NE(shared_seen[i], nullptr);
    EXPECT_EQ(shared_seen[i]->access_token, seen[i]);
  }
  EXPECT_EQ(GetTokenRpcs(), 1);  // the renewal came by push
}

TEST_F(TokenClientTest, AReportedTokenIsNeverAnsweredFromAThreadsOldSnapshot) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token first, client_->GetToken("acme", {"read_all"}));
  TaskThread hitter;
  std::string seen;
  std::string header;
  auto hit = [&] {
    hitter.Run([&] {
      for (int i = 0; i < 3; ++i) {
        absl::StatusOr<Token> token = client_->GetToken("acme", {"read_all"});
        seen = token.ok() ? token->access_token : token.status().ToString();
        absl::StatusOr<std::string> h =
            client_->AuthorizationHeader("acme", {"read_all"});
        header = h.ok() ? *h : h.status().ToString();
      }
    });
  };
  hit();
  EXPECT_EQ(seen, first.access_token);
  // Another thread reports the token; the hitter, asking again at the same
  // instant, gets the replacement.
  ASSERT_OK_AND_ASSIGN(
      Token replacement,
      client_->ReportRejected("acme", {"read_all"}, first.access_token));
  ASSERT_NE(replacement.access_token, first.access_token);
  hit();
  EXPECT_EQ(seen, replacement.access_token);
  EXPECT_EQ(header, "Bearer " + replacement.access_token);
  // The same thread reporting what it was given, then asking again.
  harness_->clock().Advance(absl::Seconds(10));  // rejectedTokenMinInterval
  hitter.Run([&] {
    ASSERT_OK(client_->GetToken("acme", {"read_all"}));  // a fresh snapshot
    ASSERT_OK_AND_ASSIGN(Token third,
                         client_->ReportRejected(replacement.access_token));
    ASSERT_OK_AND_ASSIGN(Token again, client_->GetToken("acme", {"read_all"}));
    EXPECT_NE(again.access_token, replacement.access_token);
    EXPECT_EQ(again.access_token, third.access_token);
  });
  EXPECT_EQ(GetTokenRpcs(), 3);
}

TEST_F(TokenClientTest, IdleEvictionSparesAnEntryKeptHotBySnapshotHits) {
  StartBroker();
  TokenClientOptions options = Options();
  options.idle_timeout = absl::Seconds(5);
  NewClient(options);
  ASSERT_OK_AND_ASSIGN(Token hot, client_->GetToken("acme", {"read_all"}));
  ASSERT_OK(client_->GetToken("acme", {"admin"}));  // then never again
  ASSERT_TRUE(events_.WaitFor(Kind::kWatchConnected, 2));
  // 10 s of fake time in steps of 250 ms, the hot entry asked for at every
  // step. Most of these are snapshot hits, which do not mark the entry used
  // themselves; the thread's locked hit at least every second (or a quarter
  // of idle_timeout) does, so the entry is never 5 s unused. The cold one
  // is, and goes at the worker's next pass (every second of real time).
  for (int step = 0; step < 40; ++step) {
    harness_->clock().Advance(absl::Milliseconds(250));
    ASSERT_OK_AND_ASSIGN(Token again, client_->GetToken("acme", {"read_all"}));
    ASSERT_EQ(again.access_token, hot.access_token) << "step " << step;
  }
  ASSERT_TRUE(events_.WaitFor(Kind::kEvicted));
  std::vector<TokenClientEvent> evicted = events_.Events(Kind::kEvicted);
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_THAT(evicted[0].scopes, ElementsAre("admin"));
  // The hot entry is still cached (no RPC); the cold one is a miss again.
  EXPECT_EQ(GetTokenRpcs(), 2);
  ASSERT_OK_AND_ASSIGN(Token still, client_->GetToken("acme", {"read_all"}));
  EXPECT_EQ(still.access_token, hot.access_token);
  EXPECT_EQ(GetTokenRpcs(), 2);
  ASSERT_OK(client_->GetToken("acme", {"admin"}));
  EXPECT_EQ(GetTokenRpcs(), 3);
  // And an entry evicted while a thread held a snapshot of it is a miss for
  // that thread too, never its snapshot.
  harness_->clock().Advance(absl::Seconds(6));
  ASSERT_TRUE(events_.WaitFor(Kind::kEvicted, 3));
  ASSERT_OK(client_->GetToken("acme", {"read_all"}));
  EXPECT_EQ(GetTokenRpcs(), 4);
}

TEST_F(TokenClientTest, ClientsInOneThreadNeverAnswerWithEachOthersTokens) {
  StartBroker();
  TokenClientOptions options = Options();
  options.watch = false;  // no push: each client keeps what it fetched
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TokenClient> a,
                       TokenClient::Create(options));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TokenClient> b,
                       TokenClient::Create(options));
  ASSERT_OK_AND_ASSIGN(Token first, a->GetToken("acme", {"read_all"}));
  ASSERT_OK(a->GetToken("acme", {"read_all"}));  // a's snapshot, this thread
  // b gets the broker's next token for the same key: the two clients now
  // cache different tokens under equal keys.
  ASSERT_OK_AND_ASSIGN(Token b_first, b->GetToken("acme", {"read_all"}));
  ASSERT_EQ(b_first.access_token, first.access_token);
  ASSERT_OK_AND_ASSIGN(
      Token second, b->ReportRejected("acme", {"read_all"}, first.access_token));
  ASSERT_NE(second.access_token, first.access_token);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(Token from_a, a->GetToken("acme", {"read_all"}));
    ASSERT_OK_AND_ASSIGN(Token from_b, b->GetToken("acme", {"read_all"}));
    EXPECT_EQ(from_a.access_token, first.access_token);
    EXPECT_EQ(from_b.access_token, second.access_token);
  }
  const int rpcs = GetTokenRpcs();
  // A client made after a destroyed one (often at the same address) starts
  // empty: its first call is an RPC, answered with the broker's token, never
  // the destroyed client's snapshot.
  a.reset();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TokenClient> c,
                       TokenClient::Create(options));
  ASSERT_OK_AND_ASSIGN(Token from_c, c->GetToken("acme", {"read_all"}));
  EXPECT_EQ(from_c.access_token, second.access_token);
  EXPECT_EQ(GetTokenRpcs(), rpcs + 1);
}

TEST_F(TokenClientTest, ConcurrentHitsAnswerEachKeyItsTokenAndNeverAnOldOne) {
  StartBroker();
  NewClient(Options());
  ASSERT_OK_AND_ASSIGN(Token read_all, client_->GetToken("acme", {"read_all"}));
  ASSERT_OK_AND_ASSIGN(Token admin, client_->GetToken("acme", {"admin"}));
  ASSERT_NE(read_all.access_token, admin.access_token);
  constexpr int kThreads = 4;
  constexpr int kCallsAfter = 1000;  // per thread, once it knows of the change
  // 0: read_all's first token is current; 1: its replacement is.
  std::atomic<int> phase{0};
  std::string replaced;  // written before phase becomes 1
  std::atomic<int> wrong{0};
  std::atomic<int> calls{0};
  // Per thread, read_all's tokens in the order it saw them (each once).
  std::vector<std::vector<std::string>> sequences(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::string>& sequence = sequences[t];
      for (int i = 0, after = 0; after < kCallsAfter; ++i) {
        const int seen_phase = phase.load(std::memory_order_acquire);
        after += seen_phase;
        absl::StatusOr<std::shared_ptr<const Token>> a =
            (i + t) % 2 == 0 ? client_->GetSharedToken("acme", {"read_all"})
                             : client_->GetSharedToken("acme", {"admin"});
        absl::StatusOr<Token> r = client_->GetToken("acme", {"read_all"});
        calls.fetch_add(1);
        if (!a.ok() || !r.ok()) {
          wrong.fetch_add(1);
          continue;
        }
        if ((i + t) % 2 == 1 && (*a)->access_token != admin.access_token) {
          wrong.fetch_add(1);
        }
        // Once the replacement is known to this thread, it is the answer.
        if (seen_phase == 1 && r->access_token != replaced) {
          wrong.fetch_add(1);
        }
        if (sequence.empty() || sequence.back() != r->access_token) {
          sequence.push_back(r->access_token);
        }
        if (r->scopes != std::vector<std::string>{"read_all"}) {
          wrong.fetch_add(1);
        }
      }
    });
  }
  // Once every thread is hitting, the token of read_all is replaced.
  while (calls.load() < kThreads * 1000) std::this_thread::yield();
  ASSERT_OK_AND_ASSIGN(
      Token replacement,
      client_->ReportRejected("acme", {"read_all"}, read_all.access_token));
  replaced = replacement.access_token;
  phase.store(1, std::memory_order_release);
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  // Before it knew, a thread may already have had the replacement (the
  // cache holds it before ReportRejected returns), but never went back.
  for (const std::vector<std::string>& sequence : sequences) {
    EXPECT_THAT(sequence,
                ::testing::AnyOf(ElementsAre(read_all.access_token, replaced),
                                 ElementsAre(replaced)));
  }
  EXPECT_EQ(GetTokenRpcs(), 3);
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
