// The real broker (BrokerServer) on loopback with real certificates, against
// the Treezor double over HTTPS with mandatory client certificates. Time is
// a fake clock shared by the broker and the double, so renewals and expiry
// are driven by the test, never by sleeping.
#include <atomic>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_replace.h"
#include "common/sync.h"
#include "common/token_digest.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "server/token_service.h"
#include "tests/testing/broker_harness.h"
#include "tests/testing/status_matchers.h"
#include "treezor/broker/v1/admin_service.grpc.pb.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::BrokerHarness;
using testing::CertFactory;
using testing::FakeTreezor;
using testing::LogCapture;
using Fault = FakeTreezor::Fault;

constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

// Every line logged by every test is checked for secrets and tokens.
class NoSecretsInLogs : public ::testing::Environment {
 public:
  void SetUp() override { capture_ = std::make_unique<LogCapture>(); }
  static LogCapture& log() { return *capture_; }
  void TearDown() override {
    const auto lines = capture_->lines();
    EXPECT_FALSE(lines.empty());
    for (const std::string& line : lines) {
      EXPECT_THAT(line, Not(HasSubstr(testing::kClientSecret)));
      // Every JWT starts with a base64url '{"' header: "eyJ".
      EXPECT_THAT(line, Not(HasSubstr("eyJ"))) << line;
      for (const std::string& token : *served_tokens) {
        EXPECT_THAT(line, Not(HasSubstr(token)));
      }
    }
    capture_.reset();
  }
  static inline std::vector<std::string>* served_tokens =
      new std::vector<std::string>;
  static inline Mutex* served_mu = new Mutex;

 private:
  static inline std::unique_ptr<LogCapture> capture_;
};
[[maybe_unused]] const auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new NoSecretsInLogs);

void RememberToken(const std::string& token) {
  MutexLock lock(NoSecretsInLogs::served_mu);
  NoSecretsInLogs::served_tokens->push_back(token);
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(kRpcTimeout));
  return ctx;
}

struct Answer {
  grpc::Status status;
  v1::GetTokenResponse response;
};

class BrokerIntegrationTest : public ::testing::Test {
 protected:
  void StartBroker(BrokerHarness::Options options = {}) {
    harness_ = std::make_unique<BrokerHarness>(std::move(options));
    ASSERT_OK(harness_->Start());
  }

  Answer Get(const std::string& caller, v1::GetTokenRequest request) {
    auto stub = v1::TokenService::NewStub(harness_->Channel(caller));
    Answer a;
    a.status = stub->GetToken(Context().get(), request, &a.response);
    if (a.status.ok()) RememberToken(a.response.access_token());
    return a;
  }
  Answer Get(const std::string& caller, const std::string& tenant,
             std::vector<std::string> scopes = {}) {
    v1::GetTokenRequest request;
    request.set_tenant(tenant);
    for (auto& s : scopes) request.add_scopes(s);
    return Get(caller, request);
  }

  // Number of token requests the double received for a scope string.
  int UpstreamRequestsFor(const std::string& scope) {
    int n = 0;
    for (const auto& r : harness_->treezor().requests()) {
      auto it = r.params.find("scope");
      if (it != r.params.end() && it->second == scope) ++n;
    }
    return n;
  }

  // Blocks until the cache holds a token other than `old` for acme's default
  // scopes and returns it: a watch stream delivers it as soon as the cache
  // has it — no polling.
  std::string WaitForTokenOtherThan(const std::string& old) {
    auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(kRpcTimeout));
    v1::WatchTokenRequest request;
    request.set_tenant("acme");
    auto reader = stub->WatchToken(&ctx, request);
    v1::GetTokenResponse r;
    while (reader->Read(&r) && r.access_token() == old) {
    }
    ctx.TryCancel();
    reader->Finish();
    RememberToken(r.access_token());
    return r.access_token();
  }

  // acme's current default-scope token.
  std::string AcmeToken() {
    Answer a = Get("payments", "acme");
    EXPECT_TRUE(a.status.ok()) << a.status.error_message();
    return a.response.access_token();
  }

  // The start-up prefetch of every tenant's default scopes is done, so no
  // background fetch races the test's own.
  void WaitForWarmUp() {
    ASSERT_TRUE(harness_->broker().progress().WaitUntilReady(kRpcTimeout));
  }

  // The access token the double issued for its only request with `scope`.
  std::string IssuedFingerprintFor(const std::string& scope) {
    std::string fingerprint;
    int n = 0;
    for (const auto& r : harness_->treezor().requests()) {
      if (FakeTreezor::WithScope(scope)(r)) {
        fingerprint = r.access_token_fingerprint;
        ++n;
      }
    }
    EXPECT_EQ(n, 1) << "requests with scope \"" << scope << "\"";
    return fingerprint;
  }

  std::unique_ptr<BrokerHarness> harness_;
};

TEST_F(BrokerIntegrationTest, AuthorizedCallerGetsAValidTreezorJwt) {
  StartBroker();
  Answer a = Get("payments", "acme", {"read_all", "admin", "admin"});
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.response.tenant(), "acme");
  EXPECT_EQ(a.response.token_type(), "Bearer");
  EXPECT_THAT(a.response.scopes(), ElementsAre("admin", "read_all"));
  // The token the double issued for this scope set (the start-up prefetch
  // of the default scopes may finish before or after it).
  EXPECT_EQ(TokenFingerprint(a.response.access_token()),
            IssuedFingerprintFor("admin read_all"));
  EXPECT_EQ(std::count(a.response.access_token().begin(),
                       a.response.access_token().end(), '.'),
            2);  // header.payload.signature
  EXPECT_EQ(absl::FromUnixSeconds(a.response.expires_at().seconds()),
            absl::FromUnixSeconds(
                absl::ToUnixSeconds(harness_->clock().Now() + absl::Hours(1))));
  // Same set in another order and with duplicates: same cache entry.
  Answer b = Get("payments", "acme", {"admin", "read_all"});
  ASSERT_TRUE(b.status.ok());
  EXPECT_EQ(b.response.access_token(), a.response.access_token());
  EXPECT_EQ(UpstreamRequestsFor("admin read_all"), 1);
}

// Each gRPC thread keeps a caller's recent granted requests (the request's
// bytes -> cache key, min_ttl and audit fields; token_service.cc): one
// caller's different requests, interleaved, each get their own answer,
// including requests that differ only in min_ttl or a report.
TEST_F(BrokerIntegrationTest, OneCallersRequestsInterleavedEachGetTheirOwnAnswer) {
  StartBroker();
  v1::GetTokenRequest bad_ttl;
  bad_ttl.set_tenant("acme");
  bad_ttl.mutable_min_ttl()->set_seconds(-1);
  v1::GetTokenRequest bad_report;
  bad_report.set_tenant("acme");
  bad_report.set_rejected_token_sha256("not hex");
  // Same tenant and scopes, different min_ttl: one a token meets, one no
  // token of this tenant can (its tokens live an hour). Both encode to the
  // same number of bytes, so only the bytes themselves tell them apart.
  v1::GetTokenRequest fits_ttl;
  fits_ttl.set_tenant("acme");
  fits_ttl.mutable_min_ttl()->set_seconds(200);
  v1::GetTokenRequest long_ttl = fits_ttl;
  long_ttl.mutable_min_ttl()->set_seconds(2 * 3600);
  ASSERT_EQ(fits_ttl.ByteSizeLong(), long_ttl.ByteSizeLong());
  for (int i = 0; i < 20; ++i) {
    Answer plain = Get("payments", "acme");
    ASSERT_TRUE(plain.status.ok()) << i << plain.status.error_message();
    EXPECT_THAT(plain.response.scopes(), ElementsAre("read_write")) << i;
    Answer admin = Get("payments", "acme", {"admin", "read_all"});
    ASSERT_TRUE(admin.status.ok()) << i;
    EXPECT_THAT(admin.response.scopes(), ElementsAre("admin", "read_all")) << i;
    EXPECT_EQ(admin.response.tenant(), "acme");
    Answer reordered = Get("payments", "acme", {"read_all", "admin"});
    ASSERT_TRUE(reordered.status.ok()) << i;
    EXPECT_EQ(reordered.response.access_token(), admin.response.access_token()) << i;
    EXPECT_NE(plain.response.access_token(), admin.response.access_token()) << i;
    EXPECT_EQ(Get("payments", bad_ttl).status.error_code(),
              grpc::StatusCode::INVALID_ARGUMENT) << i;
    EXPECT_TRUE(Get("payments", fits_ttl).status.ok()) << i;
    EXPECT_EQ(Get("payments", long_ttl).status.error_code(),
              grpc::StatusCode::OUT_OF_RANGE) << i;
    EXPECT_EQ(Get("payments", bad_report).status.error_code(),
              grpc::StatusCode::INVALID_ARGUMENT) << i;
    EXPECT_EQ(Get("payments", "globex").status.error_code(),
              grpc::StatusCode::PERMISSION_DENIED) << i;
  }
  EXPECT_EQ(UpstreamRequestsFor("admin read_all"), 1);
  ASSERT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("tenant":"acme","scopes":"admin read_all","outcome":"OK")"},
      kRpcTimeout));
  ASSERT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("tenant":"acme","scopes":"read_write","outcome":"OK")"},
      kRpcTimeout));
}

TEST_F(BrokerIntegrationTest, DefaultScopesAreFetchedAtStartUp) {
  StartBroker();
  // Nobody asked yet: the broker fetches acme's default scopes on its own.
  ASSERT_TRUE(harness_->treezor().WaitForRequestsWhere(
      1, FakeTreezor::WithScope("read_write"), kRpcTimeout));
  Answer a = Get("payments", "acme");
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_THAT(a.response.scopes(), ElementsAre("read_write"));
  EXPECT_EQ(UpstreamRequestsFor("read_write"), 1);
}

TEST_F(BrokerIntegrationTest, CallerWithoutCertificateIsRefusedAtHandshake) {
  StartBroker();
  Answer a = Get("none", "acme");
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << a.status.error_message();
}

TEST_F(BrokerIntegrationTest, CertificateFromAnotherCaIsRefusedAtHandshake) {
  StartBroker();
  Answer a = Get("stranger", "acme");
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << a.status.error_message();
}

TEST_F(BrokerIntegrationTest, OtherAndUnknownTenantsGiveTheSameDenial) {
  StartBroker();
  Answer other = Get("payments", "globex");
  Answer unknown = Get("payments", "no-such-tenant");
  EXPECT_EQ(other.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Same text but for the tenant name the caller itself sent.
  std::string other_msg = other.status.error_message();
  std::string unknown_msg = unknown.status.error_message();
  EXPECT_EQ(other_msg.replace(other_msg.find("globex"), 6, "X"),
            unknown_msg.replace(unknown_msg.find("no-such-tenant"), 14, "X"));
}

TEST_F(BrokerIntegrationTest, UnlistedCallerGetsNothing) {
  StartBroker();
  EXPECT_EQ(Get("intruder", "acme").status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(BrokerIntegrationTest, DnsSanIdentityIsAuthorizedForItsTenantOnly) {
  StartBroker();
  Answer a = Get("cards", "globex", {"read_only"});
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(Get("cards", "globex", {"admin"}).status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);  // not in allowedScopes
  EXPECT_EQ(Get("cards", "acme").status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(BrokerIntegrationTest, MalformedRequestsNameTheField) {
  StartBroker();
  Answer empty = Get("payments", "");
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.status.error_message(), HasSubstr("tenant"));

  v1::GetTokenRequest negative;
  negative.set_tenant("acme");
  negative.mutable_min_ttl()->set_seconds(-5);
  Answer a = Get("payments", negative);
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(a.status.error_message(), HasSubstr("min_ttl"));

  v1::GetTokenRequest bad_sha;
  bad_sha.set_tenant("acme");
  bad_sha.set_rejected_token_sha256("NOT-HEX");
  Answer b = Get("payments", bad_sha);
  EXPECT_EQ(b.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(b.status.error_message(), HasSubstr("rejected_token_sha256"));

  Answer bad_scope = Get("payments", "acme", {"admin", "read all"});
  EXPECT_EQ(bad_scope.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_scope.status.error_message(), HasSubstr("scopes[1]"));
}

TEST_F(BrokerIntegrationTest, TwoHundredConcurrentColdCallersCauseOneUpstreamRequest) {
  StartBroker();
  WaitForWarmUp();
  harness_->treezor().HoldRequests();
  auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  constexpr int kCallers = 200;
  struct Call {
    grpc::ClientContext ctx;
    v1::GetTokenRequest request;
    v1::GetTokenResponse response;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  Mutex mu;
  CondVar cv;
  int done = 0;
  for (int i = 0; i < kCallers; ++i) {
    auto call = std::make_unique<Call>();
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           absl::ToChronoMilliseconds(kRpcTimeout));
    call->request.set_tenant("acme");
    call->request.add_scopes("read_all");
    Call* c = call.get();
    calls.push_back(std::move(call));
    stub->async()->GetToken(&c->ctx, &c->request, &c->response,
                            [&, c](grpc::Status s) {
                              c->status = std::move(s);
                              MutexLock lock(&mu);
                              ++done;
                              cv.SignalAll();
                            });
  }
  ASSERT_TRUE(harness_->treezor().WaitForHeld(1, kRpcTimeout));
  harness_->treezor().ReleaseRequests();
  {
    MutexLock lock(&mu);
    while (done < kCallers) cv.WaitFor(&mu, absl::Seconds(1));
  }
  EXPECT_EQ(UpstreamRequestsFor("read_all"), 1);
  for (const auto& c : calls) {
    ASSERT_TRUE(c->status.ok()) << c->status.error_message();
    EXPECT_EQ(c->response.access_token(), calls[0]->response.access_token());
  }
  RememberToken(calls[0]->response.access_token());
}

TEST_F(BrokerIntegrationTest, ShortLivedTokenIsRenewedBeforeExpiryWithNoCaller) {
  StartBroker({.token_lifetime = absl::Minutes(10)});
  WaitForWarmUp();
  const std::string first = AcmeToken();
  // Renewal at 75% of 10 min ± 5% (30 s): at the latest after 8 min.
  harness_->clock().Advance(absl::Minutes(8));
  const std::string renewed = WaitForTokenOtherThan(first);
  // The caller now gets the renewed token although nobody asked for it.
  Answer a = Get("payments", "acme");
  ASSERT_TRUE(a.status.ok());
  EXPECT_EQ(a.response.access_token(), renewed);
  EXPECT_NE(renewed, first);
  EXPECT_EQ(UpstreamRequestsFor("read_write"), 2);
}

TEST_F(BrokerIntegrationTest, WatchTokenSeesTheCurrentThenTheRenewedToken) {
  StartBroker();
  WaitForWarmUp();
  auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  grpc::ClientContext ctx;
  v1::WatchTokenRequest request;
  request.set_tenant("acme");
  auto reader = stub->WatchToken(&ctx, request);
  v1::GetTokenResponse current, renewed;
  ASSERT_TRUE(reader->Read(&current));
  EXPECT_EQ(current.access_token(), AcmeToken());
  harness_->clock().Advance(absl::Minutes(49));
  ASSERT_TRUE(reader->Read(&renewed));
  EXPECT_NE(renewed.access_token(), current.access_token());
  EXPECT_GT(renewed.expires_at().seconds(), current.expires_at().seconds());
  RememberToken(current.access_token());
  RememberToken(renewed.access_token());
  ctx.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(BrokerIntegrationTest, OutageServesCachedTokenThenUnavailableThenRecovers) {
  StartBroker({.extra_config = R"("renewal": {"maxBackoff": "30s"},)"});
  WaitForWarmUp();
  const std::string first = AcmeToken();
  const absl::Time expiry = harness_->clock().Now() + absl::Hours(1);
  harness_->treezor().SetPersistentFault(Fault::Status(503));
  harness_->clock().Advance(absl::Minutes(49));  // renewal fails
  ASSERT_TRUE(harness_->treezor().WaitForRequestsWhere(
      2, FakeTreezor::WithScope("read_write"), kRpcTimeout));
  // Still served until 60 s before expiry.
  harness_->clock().Set(expiry - absl::Seconds(61));
  Answer cached = Get("payments", "acme");
  ASSERT_TRUE(cached.status.ok()) << cached.status.error_message();
  EXPECT_EQ(cached.response.access_token(), first);
  harness_->clock().Set(expiry - absl::Seconds(59));
  Answer down = Get("payments", "acme");
  EXPECT_EQ(down.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(down.status.error_message(), HasSubstr("HTTP 503"));
  // Treezor comes back; the broker's own retries find it.
  harness_->treezor().SetPersistentFault(std::nullopt);
  const int before = harness_->treezor().request_count();
  harness_->clock().Advance(absl::Seconds(31));  // past the max backoff
  ASSERT_TRUE(harness_->treezor().WaitForRequests(before + 1, kRpcTimeout));
  const std::string recovered = WaitForTokenOtherThan(first);
  Answer up = Get("payments", "acme");
  ASSERT_TRUE(up.status.ok()) << up.status.error_message();
  EXPECT_EQ(up.response.access_token(), recovered);
}

TEST_F(BrokerIntegrationTest, RejectedTokenIsReplacedOnceForManyReporters) {
  StartBroker();
  WaitForWarmUp();
  const std::string dead = AcmeToken();
  v1::GetTokenRequest report;
  report.set_tenant("acme");
  report.set_rejected_token_sha256(TokenSha256Hex(dead));
  std::vector<std::thread> threads;
  std::vector<Answer> answers(20);
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] { answers[i] = Get("payments", report); });
  }
  for (auto& t : threads) t.join();
  for (const Answer& a : answers) {
    ASSERT_TRUE(a.status.ok()) << a.status.error_message();
    EXPECT_NE(a.response.access_token(), dead);
    EXPECT_EQ(a.response.access_token(), answers[0].response.access_token());
  }
  EXPECT_EQ(UpstreamRequestsFor("read_write"), 2);
}

TEST_F(BrokerIntegrationTest, CallersDeadlineIsHonouredWhileTreezorHangs) {
  StartBroker();
  WaitForWarmUp();
  harness_->treezor().HoldRequests();
  auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(300));
  v1::GetTokenRequest request;
  request.set_tenant("acme");
  request.add_scopes("legal");  // cold: parks at the double
  v1::GetTokenResponse response;
  const absl::Time start = absl::Now();
  grpc::Status status = stub->GetToken(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  harness_->treezor().ReleaseRequests();
}

// Issue 11, item 3: a caller whose deadline passes while Treezor hangs is
// removed from the entry's waiters at once, not when Treezor answers. The
// audit line is written by the callback CancelWaiter runs, after it removed
// the waiter: once the line is there, the waiter must be gone.
TEST_F(BrokerIntegrationTest, ExpiredCallerLeavesNoWaiterBehind) {
  StartBroker();
  WaitForWarmUp();
  harness_->treezor().HoldRequests();
  auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(300));
  v1::GetTokenRequest request;
  request.set_tenant("acme");
  // Cold, and a scope no other test uses: its audit line is this test's.
  request.add_scopes("expired_caller");
  v1::GetTokenResponse response;
  grpc::Status status = stub->GetToken(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The broker's own deadline is later than the client's (it counts from
  // when the request arrived), so the client's cancellation (RST_STREAM)
  // usually reaches it first: the audit says DEADLINE_EXCEEDED or CANCELLED
  // depending on which came first. Either way the waiter must be gone.
  ASSERT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"GetToken")", R"("tenant":"acme")", "expired_caller"},
      kRpcTimeout));
  const std::vector<std::string> lines = NoSecretsInLogs::log().LinesWith(
      {R"("rpc":"GetToken")", "expired_caller"});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], ::testing::AnyOf(
                            HasSubstr(R"("outcome":"DEADLINE_EXCEEDED")"),
                            HasSubstr(R"("outcome":"CANCELLED")")));
  const CacheKey key{"acme", ScopeSet::FromList({"expired_caller"})};
  EXPECT_EQ(harness_->broker().cache().waiters(key), 0u);
  harness_->treezor().ReleaseRequests();
}

TEST_F(BrokerIntegrationTest, CancelledCallerLeavesNoWaiterBehind) {
  StartBroker();
  WaitForWarmUp();
  harness_->treezor().HoldRequests();
  auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  auto ctx = Context();
  v1::GetTokenRequest request;
  request.set_tenant("acme");
  // Cold, and a scope no other test uses: its audit line is this test's.
  request.add_scopes("cancelled_caller");
  const CacheKey key{"acme", ScopeSet::FromList({"cancelled_caller"})};
  grpc::Status status;
  std::thread caller([&] {
    v1::GetTokenResponse response;
    status = stub->GetToken(ctx.get(), request, &response);
  });
  // The caller waits once its fetch is held at the double.
  ASSERT_TRUE(harness_->treezor().WaitForHeld(1, kRpcTimeout));
  EXPECT_EQ(harness_->broker().cache().waiters(key), 1u);
  ctx->TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"GetToken")", R"("outcome":"CANCELLED")",
       "the caller cancelled the call", "cancelled_caller"},
      kRpcTimeout));
  EXPECT_EQ(harness_->broker().cache().waiters(key), 0u);
  harness_->treezor().ReleaseRequests();
}

TEST_F(BrokerIntegrationTest, MinTtlBeyondATokensLifetimeIsOutOfRange) {
  StartBroker();
  WaitForWarmUp();
  v1::GetTokenRequest request;
  request.set_tenant("acme");
  request.mutable_min_ttl()->set_seconds(2 * 3600);
  EXPECT_EQ(Get("payments", request).status.error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
}

TEST_F(BrokerIntegrationTest, RefusedCredentialsAreFailedPreconditionWithoutSecret) {
  StartBroker();
  // acme's secret file now holds a secret Treezor does not know.
  testing::WriteFileOrDie(harness_->dir().File("acme.secret"), "stale-secret");
  Answer a = Get("payments", "acme", {"keys"});
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(a.status.error_message(), HasSubstr("acme"));
  EXPECT_THAT(a.status.error_message(), HasSubstr("invalid_client"));
  EXPECT_THAT(a.status.error_message(), Not(HasSubstr(testing::kClientSecret)));
  EXPECT_THAT(a.status.error_message(), Not(HasSubstr("stale-secret")));
  // Other tenants keep working.
  EXPECT_TRUE(Get("cards", "globex").status.ok());
}

TEST_F(BrokerIntegrationTest, UpstreamFailuresOnAColdEntryAreUnavailableAndSayWhat) {
  StartBroker({.extra_config = R"("renewal": {"initialBackoff": "0.001s", "maxBackoff": "0.001s"},)"});
  WaitForWarmUp();
  struct Case {
    Fault fault;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {Fault::Status(502), "HTTP 502"},
      {Fault::TooManyRequests(1), "HTTP 429"},
      {Fault::Of(Fault::kGarbage), "unparsable"},
      {Fault::Of(Fault::kDropConnection), "Treezor"},
  };
  int i = 0;
  for (const Case& c : cases) {
    harness_->treezor().PushFault(c.fault);
    // A new scope set per case: a cold entry.
    Answer a = Get("payments", "acme", {absl::StrCat("scope", i++)});
    EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << c.expected << ": " << a.status.error_message();
    EXPECT_THAT(a.status.error_message(), HasSubstr(c.expected));
  }
}

TEST_F(BrokerIntegrationTest, HealthIsServedOnBothPortsAndDescribedByReflection) {
  StartBroker();
  // Ready once both tenants' default tokens are in (operations_test covers
  // the NOT_SERVING phase).
  ASSERT_TRUE(harness_->broker().progress().WaitForFetches(2, kRpcTimeout));
  for (auto channel : {harness_->Channel("payments"), harness_->HealthChannel()}) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(Context().get(), request, &response).ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
    request.set_service("treezor.broker.v1.TokenService");
    ASSERT_TRUE(stub->Check(Context().get(), request, &response).ok());
    request.set_service("nope");
    EXPECT_EQ(stub->Check(Context().get(), request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(BrokerIntegrationTest, ShutdownDrainsInFlightCallsAndEndsWatches) {
  StartBroker();
  WaitForWarmUp();
  auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  // A watch stream, and a cold call parked at the double.
  grpc::ClientContext watch_ctx;
  v1::WatchTokenRequest watch_request;
  watch_request.set_tenant("acme");
  auto reader = stub->WatchToken(&watch_ctx, watch_request);
  v1::GetTokenResponse first;
  ASSERT_TRUE(reader->Read(&first));
  harness_->treezor().HoldRequests();
  Answer in_flight;
  std::thread caller([&] { in_flight = Get("payments", "acme", {"legal"}); });
  // The call is admitted (its fetch waits at the double) before SIGTERM.
  ASSERT_TRUE(harness_->treezor().WaitForRequestsWhere(
      1, FakeTreezor::WithScope("legal"), kRpcTimeout));
  // A channel that has not connected yet (channels connect on first use).
  auto late_stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  std::thread stopper([&] { harness_->StopBroker(); });
  // The watch ends cleanly with UNAVAILABLE ("reconnect") ...
  v1::GetTokenResponse ignored;
  EXPECT_FALSE(reader->Read(&ignored));
  grpc::Status watch_status = reader->Finish();
  EXPECT_EQ(watch_status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(watch_status.error_message(), HasSubstr("shutting down"));
  // A new caller is not admitted any more (the port stopped accepting
  // before the watches were ended): UNAVAILABLE at once, retryable
  // elsewhere, while the admitted call below still completes.
  v1::GetTokenRequest late_request;
  late_request.set_tenant("acme");
  v1::GetTokenResponse late_response;
  const grpc::Status late =
      late_stub->GetToken(Context().get(), late_request, &late_response);
  EXPECT_EQ(late.error_code(), grpc::StatusCode::UNAVAILABLE)
      << late.error_message();
  // ... and the in-flight call completes once Treezor answers.
  harness_->treezor().ReleaseRequests();
  caller.join();
  stopper.join();
  EXPECT_TRUE(in_flight.status.ok()) << in_flight.status.error_message();
}

// A call still waiting when the grace period ends is answered UNAVAILABLE
// ("shutting down"), and the process does not wait for Treezor: the request
// in flight is aborted, so the stop takes the grace period, not the
// 15 s request timeout.
TEST_F(BrokerIntegrationTest, ShutdownAnswersCallsStillWaitingWhenTheGraceEnds) {
  StartBroker({.shutdown_grace_period = absl::Seconds(1)});
  WaitForWarmUp();
  harness_->treezor().SetPersistentFault(Fault::Hang());
  Answer waiting;
  std::thread caller([&] { waiting = Get("payments", "acme", {"legal"}); });
  ASSERT_TRUE(harness_->treezor().WaitForRequestsWhere(
      1, FakeTreezor::WithScope("legal"), kRpcTimeout));
  const absl::Time start = absl::Now();
  harness_->StopBroker();
  const absl::Duration stop_took = absl::Now() - start;
  caller.join();
  harness_->treezor().SetPersistentFault(std::nullopt);
  harness_->treezor().ReleaseHangs();
  EXPECT_EQ(waiting.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << waiting.status.error_message();
  EXPECT_THAT(waiting.status.error_message(), HasSubstr("shutting down"));
  EXPECT_GE(stop_took, absl::Seconds(1));  // the grace period was granted
  // Grace (1 s) + libcurl's abort (<= 1 s) + the answer margin (1 s), with
  // slack for a loaded machine; far below the request timeout (15 s).
  EXPECT_LT(stop_took, absl::Seconds(8));
}

// A caller sending distinct scope sets gets at most its cap of cache
// entries (each a Treezor request and a renewal); past it RESOURCE_EXHAUSTED
// naming the limit. The per-entry metric series follow the entries, so the
// metrics page stays as small as the caps make it.
TEST_F(BrokerIntegrationTest, ScopeSetFloodIsCappedAndSoAreItsMetricSeries) {
  StartBroker({.extra_config =
                   R"("limits": {"maxScopeSetsPerCaller": 3,
                                 "maxScopeSetsPerTenant": 5},)"});
  WaitForWarmUp();
  int served = 0;
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    const Answer a = Get("payments", "acme", {absl::StrCat("flood", i)});
    if (a.status.ok()) {
      ++served;
    } else {
      EXPECT_EQ(a.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_THAT(a.status.error_message(),
                  HasSubstr("limits.maxScopeSetsPerCaller"));
      ++refused;
    }
  }
  EXPECT_EQ(served, 3);
  EXPECT_EQ(refused, 17);
  EXPECT_EQ(UpstreamRequestsFor("flood3"), 0);
  // acme's default scope set and the caller's three: four series per
  // per-entry family, whatever the flood sent.
  const std::string page = harness_->metrics().Render();
  int series = 0;
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (absl::StartsWith(line, "treezor_broker_token_expiry_seconds{") &&
        absl::StrContains(line, R"(tenant="acme")")) {
      ++series;
    }
  }
  EXPECT_EQ(series, 4);
  EXPECT_FALSE(absl::StrContains(page, "flood3"));
}

TEST_F(BrokerIntegrationTest, EveryRpcWritesAnAuditLine) {
  StartBroker();
  WaitForWarmUp();
  ASSERT_TRUE(Get("payments", "acme").status.ok());
  Get("intruder", "acme");
  auto has_line = [](std::vector<std::string> needles) {
    for (const std::string& line : NoSecretsInLogs::log().lines()) {
      bool all = true;
      for (const auto& n : needles) all = all && absl::StrContains(line, n);
      if (all) return true;
    }
    return false;
  };
  EXPECT_TRUE(has_line({R"("msg":"audit")", R"("rpc":"GetToken")",
                        "spiffe://corp/payments", R"("tenant":"acme")",
                        R"("outcome":"OK")", R"("token_fp":")"}));
  EXPECT_TRUE(has_line({R"("msg":"audit")", R"("caller":"cn:intruder")",
                        R"("outcome":"PERMISSION_DENIED")"}));
}

// --- Typed identities (issue 10, item 3): real certificates, real handshakes.

BrokerHarness::Options WithIdentityCertificates() {
  BrokerHarness::Options options;
  options.extra_certificates = {
      // Its own SPIFFE ID in the URI SAN, another workload's in the CN.
      {"attacker", {.common_name = "spiffe://corp/payments",
                    .uri_sans = {"spiffe://corp/attacker"}}},
      // The admin's SPIFFE ID as CN, beside a URI SAN of its own.
      {"fake-oncall", {.common_name = "spiffe://corp/oncall",
                       .uri_sans = {"spiffe://corp/fake-oncall"}}},
      {"two-uris", {.common_name = "payments",
                    .uri_sans = {"spiffe://corp/payments",
                                 "spiffe://corp/other"}}},
      // A legacy client: CN only, no SAN.
      {"legacy", {.common_name = "legacy-batch"}},
      // cards' DNS name as CN, beside a DNS SAN of its own.
      {"dns-cn", {.common_name = "cards.internal",
                  .dns_sans = {"other.internal"}}},
  };
  options.extra_callers =
      R"({"identity": "legacy-batch", "tenants": ["acme"]},)";
  return options;
}

TEST_F(BrokerIntegrationTest, CnNamingAnotherWorkloadDoesNotMakeTheCallerIt) {
  StartBroker(WithIdentityCertificates());
  Answer a = Get("attacker", "acme");
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(a.status.error_message(),
              HasSubstr("no configured caller matches this certificate "
                        "(identities: uri \"spiffe://corp/attacker\")"));
}

TEST_F(BrokerIntegrationTest, CnNamingAnAdminDoesNotMakeTheCallerAdmin) {
  StartBroker(WithIdentityCertificates());
  v1::ListTokensResponse list;
  grpc::Status fake = v1::BrokerAdmin::NewStub(harness_->Channel("fake-oncall"))
                          ->ListTokens(Context().get(), {}, &list);
  EXPECT_EQ(fake.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(fake.error_message(), HasSubstr("no configured admin matches"));
  grpc::Status real = v1::BrokerAdmin::NewStub(harness_->Channel("oncall"))
                          ->ListTokens(Context().get(), {}, &list);
  EXPECT_TRUE(real.ok()) << real.error_message();
}

TEST_F(BrokerIntegrationTest, CertificateWithTwoUriSansIsRefused) {
  StartBroker(WithIdentityCertificates());
  Answer a = Get("two-uris", "acme");
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(a.status.error_message(),
              HasSubstr("caller certificate has 2 URI SANs; a SPIFFE "
                        "X.509-SVID has exactly one"));
}

TEST_F(BrokerIntegrationTest, CnOnlyCertificateMatchesItsCn) {
  StartBroker(WithIdentityCertificates());
  WaitForWarmUp();
  Answer a = Get("legacy", "acme");
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("msg":"audit")", R"("caller":"cn:legacy-batch")",
       R"("identity":"legacy-batch","identity_kind":"cn")",
       R"("outcome":"OK")"},
      kRpcTimeout));
}

TEST_F(BrokerIntegrationTest, DnsSanCertificateDoesNotMatchThroughItsCn) {
  StartBroker(WithIdentityCertificates());
  Answer a = Get("dns-cn", "globex", {"read_only"});
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(a.status.error_message(),
              HasSubstr("(identities: dns \"other.internal\")"));
  // The real cards certificate (DNS SAN cards.internal) still works.
  EXPECT_TRUE(Get("cards", "globex", {"read_only"}).status.ok());
}

TEST_F(BrokerIntegrationTest, AuditLinesNameTheIdentityThatMatchedAndHow) {
  StartBroker();
  WaitForWarmUp();
  ASSERT_TRUE(Get("payments", "acme").status.ok());
  ASSERT_TRUE(Get("cards", "globex", {"read_only"}).status.ok());
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"GetToken")",
       R"("caller":"uri:spiffe://corp/payments,cn:payments")",
       R"("identity":"spiffe://corp/payments","identity_kind":"uri")"},
      kRpcTimeout));
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"GetToken")", R"("caller":"dns:cards.internal,cn:cards-service")",
       R"("identity":"cards.internal","identity_kind":"dns")"},
      kRpcTimeout));
  v1::ListTokensResponse list;
  ASSERT_TRUE(v1::BrokerAdmin::NewStub(harness_->Channel("oncall"))
                  ->ListTokens(Context().get(), {}, &list)
                  .ok());
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"ListTokens")",
       R"("identity":"spiffe://corp/oncall","identity_kind":"uri")"},
      kRpcTimeout));
}

// --- The empty scope set is a scope set (issue 10, item 1).

// Requests the double received without a `scope` parameter.
int RequestsWithoutScope(const testing::FakeTreezor& treezor) {
  int n = 0;
  for (const auto& r : treezor.requests()) {
    if (testing::FakeTreezor::WithScope("")(r)) ++n;
  }
  return n;
}

TEST_F(BrokerIntegrationTest, RestrictedCallerCannotOmitScopesToGetTreezorsDefaults) {
  // "open" has neither allowedScopes nor defaultScopes; "narrow" may get
  // read_only there, "wide" anything.
  StartBroker({.extra_certificates = {{"narrow", {.common_name = "narrow"}},
                                      {"wide", {.common_name = "wide"}}},
               .extra_callers =
                   R"({"identity": "narrow", "tenants": ["open"],
                       "scopes": ["read_only"]},
                      {"identity": "wide", "tenants": ["open"]},)",
               .extra_tenants = {{"open", ""}}});
  WaitForWarmUp();
  const int before = RequestsWithoutScope(harness_->treezor());
  Answer a = Get("narrow", "open");
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(a.status.error_message(),
              HasSubstr("name the scopes to request"));
  EXPECT_EQ(RequestsWithoutScope(harness_->treezor()), before);
  EXPECT_TRUE(Get("narrow", "open", {"read_only"}).status.ok());
  // An unrestricted caller on a tenant without allowedScopes still may.
  // (its empty set is "open"'s default set, prefetched at start-up).
  EXPECT_TRUE(Get("wide", "open").status.ok());
  EXPECT_EQ(RequestsWithoutScope(harness_->treezor()), before);
}

TEST_F(BrokerIntegrationTest, TenantWithAllowedScopesAndNoDefaultsIsNeverFetchedWithoutScope) {
  StartBroker({.extra_certificates = {{"fence-user", {.common_name = "fu"}}},
               .extra_callers = R"({"identity": "fu", "tenants": ["fenced"]},)",
               .extra_tenants = {{"fenced", R"("allowedScopes": ["read_only"],)"}}});
  // Readiness does not wait for "fenced", and start-up did not fetch it.
  WaitForWarmUp();
  EXPECT_EQ(RequestsWithoutScope(harness_->treezor()), 0);
  Answer a = Get("fence-user", "fenced");
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(a.status.error_message(),
              HasSubstr("tenant \"fenced\" has allowedScopes and no "
                        "defaultScopes: name the scopes to request"));
  ASSERT_TRUE(Get("fence-user", "fenced", {"read_only"}).status.ok());
  EXPECT_EQ(RequestsWithoutScope(harness_->treezor()), 0);
}

// --- Revocation reaches open streams (issue 10, item 2).

class RevocationTest : public BrokerIntegrationTest {
 protected:
  // A WatchToken stream, past its first token.
  struct OpenWatch {
    grpc::ClientContext ctx;
    std::unique_ptr<v1::TokenService::Stub> stub;
    std::unique_ptr<grpc::ClientReader<v1::GetTokenResponse>> reader;
  };

  std::unique_ptr<OpenWatch> Watch(const std::string& caller,
                                   const std::string& tenant,
                                   std::vector<std::string> scopes = {}) {
    auto w = std::make_unique<OpenWatch>();
    w->ctx.set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(kRpcTimeout));
    w->stub = v1::TokenService::NewStub(harness_->Channel(caller));
    v1::WatchTokenRequest request;
    request.set_tenant(tenant);
    for (auto& scope : scopes) request.add_scopes(scope);
    w->reader = w->stub->WatchToken(&w->ctx, request);
    v1::GetTokenResponse first;
    EXPECT_TRUE(w->reader->Read(&first));
    RememberToken(first.access_token());
    return w;
  }

  // The config file now `json`; returns once the broker applied it.
  void Reload(const std::string& json) {
    testing::WriteFileOrDie(harness_->config_path(), json);
    ASSERT_TRUE(harness_->broker().progress().WaitForGeneration(2, kRpcTimeout)) << json;
  }

  // Lets the tokens fall due and `renewals` renewals happen.
  void Renew(int renewals) {
    const int64_t done = harness_->broker().progress().fetches_done();
    harness_->clock().Advance(absl::Minutes(49));
    ASSERT_TRUE(harness_->broker().progress().WaitForFetches(done + renewals, kRpcTimeout));
  }

  // `w` ended with PERMISSION_DENIED and got nothing after its first token.
  void ExpectRevoked(OpenWatch& w) {
    v1::GetTokenResponse more;
    EXPECT_FALSE(w.reader->Read(&more))
        << "a revoked stream received a token";
    if (!more.access_token().empty()) RememberToken(more.access_token());
    const grpc::Status status = w.reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(status.error_message(),
                HasSubstr("access revoked by a configuration change"));
  }

  std::string Config(const std::string& acme_extra = "") {
    return harness_->RenderConfig("", acme_extra);
  }
  static constexpr absl::string_view kPayments =
      R"({"identity": "spiffe://corp/payments", "tenants": ["acme"]},)";
};

TEST_F(RevocationTest, RemovingTheCallerEndsItsStream) {
  StartBroker();
  WaitForWarmUp();
  auto revoked = Watch("payments", "acme");
  Reload(absl::StrReplaceAll(Config(), {{kPayments, ""}}));
  Renew(1);
  ExpectRevoked(*revoked);
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"WatchToken")", R"("outcome":"PERMISSION_DENIED")",
       "access revoked by a configuration change: no configured caller"},
      kRpcTimeout));
}

TEST_F(RevocationTest, NarrowingTheCallersTenantsEndsItsStream) {
  StartBroker();
  WaitForWarmUp();
  auto revoked = Watch("payments", "acme");
  Reload(absl::StrReplaceAll(
      Config(),
      {{kPayments,
        R"({"identity": "spiffe://corp/payments", "tenants": ["globex"]},)"}}));
  Renew(1);
  ExpectRevoked(*revoked);
}

TEST_F(RevocationTest, NarrowingTheCallersScopesEndsOnlyTheStreamsItNoLongerCovers) {
  StartBroker();
  WaitForWarmUp();
  auto revoked = Watch("payments", "acme");  // read_write, the default
  auto kept = Watch("payments", "acme", {"read_only"});
  Reload(absl::StrReplaceAll(
      Config(), {{kPayments, R"({"identity": "spiffe://corp/payments",
                                 "tenants": ["acme"], "scopes": ["read_only"]},)"}}));
  Renew(2);  // read_write and read_only
  ExpectRevoked(*revoked);
  v1::GetTokenResponse renewed;
  ASSERT_TRUE(kept->reader->Read(&renewed));
  RememberToken(renewed.access_token());
  kept->ctx.TryCancel();
}

TEST_F(RevocationTest, ShrinkingTheTenantsAllowedScopesEndsTheStream) {
  // Applied by the ReloadConfig RPC, not the file watcher.
  StartBroker({.file_poll_interval = absl::Hours(1)});
  WaitForWarmUp();
  auto revoked = Watch("payments", "acme", {"admin"});
  testing::WriteFileOrDie(harness_->config_path(),
                          Config(R"("allowedScopes": ["read_write"],)"));
  v1::ReloadConfigResponse reloaded;
  ASSERT_TRUE(v1::BrokerAdmin::NewStub(harness_->Channel("oncall"))
                  ->ReloadConfig(Context().get(), {}, &reloaded)
                  .ok());
  ASSERT_TRUE(reloaded.applied()) << reloaded.error();
  Renew(1);
  ExpectRevoked(*revoked);
}

// --- Every token handed out is audited when it is (issue 10, item 10).

TEST_F(BrokerIntegrationTest, WatchTokenAuditsItsStartAndEveryTokenSent) {
  StartBroker();
  WaitForWarmUp();
  auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
  grpc::ClientContext ctx;
  v1::WatchTokenRequest request;
  request.set_tenant("acme");
  auto reader = stub->WatchToken(&ctx, request);
  v1::GetTokenResponse current, renewed;
  ASSERT_TRUE(reader->Read(&current));
  RememberToken(current.access_token());
  const std::vector<std::string> watch = {
      R"("msg":"audit","rpc":"WatchToken")",
      R"("identity":"spiffe://corp/payments","identity_kind":"uri")",
      R"("tenant":"acme","scopes":"read_write")"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), watch.begin(), watch.end());
    return more;
  };
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      with({R"("event":"stream_started"})"}), kRpcTimeout));
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      with({absl::StrCat(R"("event":"token_sent","token_fp":")",
                         TokenFingerprint(current.access_token()),
                         R"(","version":")")}),
      kRpcTimeout));
  harness_->clock().Advance(absl::Minutes(49));
  ASSERT_TRUE(reader->Read(&renewed));
  RememberToken(renewed.access_token());
  // The renewal is audited as it is sent, while the stream is still open.
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      with({absl::StrCat(R"("event":"token_sent","token_fp":")",
                         TokenFingerprint(renewed.access_token()))}),
      kRpcTimeout));
  ctx.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      with({R"("outcome":"CANCELLED")", R"("tokens_sent":"2")"}),
      kRpcTimeout));
}

TEST_F(BrokerIntegrationTest, AdminRpcsNameTheTenantTheyActOn) {
  StartBroker();
  WaitForWarmUp();
  auto admin = v1::BrokerAdmin::NewStub(harness_->Channel("oncall"));
  v1::RefreshTokenRequest refresh;
  refresh.set_tenant("acme");
  v1::RefreshTokenResponse refreshed;
  ASSERT_TRUE(admin->RefreshToken(Context().get(), refresh, &refreshed).ok());
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"RefreshToken")", R"("identity":"spiffe://corp/oncall")",
       R"("tenant":"acme","scopes":"read_write")",
       absl::StrCat(R"("token_fp":")", refreshed.token_fingerprint())},
      kRpcTimeout));
  v1::ListTokensRequest list;
  list.set_tenant("globex");
  v1::ListTokensResponse listed;
  ASSERT_TRUE(admin->ListTokens(Context().get(), list, &listed).ok());
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"ListTokens")", R"("tenant":"globex")"}, kRpcTimeout));
  ASSERT_TRUE(admin->ListTokens(Context().get(), {}, &listed).ok());
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"ListTokens")", R"("tenant":"*")"}, kRpcTimeout));
}

// --- Log lines are bounded (issue 10, item 11).

TEST_F(BrokerIntegrationTest, HostileRequestsWriteBoundedAuditLines) {
  // A certificate that is not in callers[], with many long SANs.
  CertFactory::LeafOptions noisy{.common_name = std::string(60, 'c')};
  for (int i = 0; i < 90; ++i) {
    noisy.dns_sans.push_back(absl::StrCat(std::string(60, 'x'), ".",
                                          std::string(60, 'y'), ".n", i,
                                          ".internal"));
  }
  BrokerHarness::Options options;
  options.extra_certificates = {{"noisy", noisy}};
  StartBroker(options);
  WaitForWarmUp();
  // Thousands of long scopes, from that stranger and from a real caller.
  v1::GetTokenRequest get;
  get.set_tenant(std::string(5000, 't'));
  for (int i = 0; i < 3000; ++i) get.add_scopes(std::string(60, 's'));
  EXPECT_EQ(Get("noisy", get).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Get("payments", get).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  get.set_tenant("globex");
  get.mutable_scopes()->Clear();
  for (int i = 0; i < 30; ++i) get.add_scopes(absl::StrCat(std::string(60, 's'), i));
  EXPECT_EQ(Get("noisy", get).status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Get("cards", get).status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);  // globex allows read_only
  {
    auto stub = v1::TokenService::NewStub(harness_->Channel("noisy"));
    grpc::ClientContext ctx;
    v1::WatchTokenRequest watch;
    watch.set_tenant("acme");
    for (int i = 0; i < 3000; ++i) watch.add_scopes(std::string(60, 's'));
    auto reader = stub->WatchToken(&ctx, watch);
    v1::GetTokenResponse r;
    EXPECT_FALSE(reader->Read(&r));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::ListTokensResponse list;
  EXPECT_EQ(v1::BrokerAdmin::NewStub(harness_->Channel("noisy"))
                ->ListTokens(Context().get(), {}, &list)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"ListTokens")", R"("caller_names":"91")"}, kRpcTimeout));
  int audited = 0;
  for (const std::string& line : NoSecretsInLogs::log().lines()) {
    const bool cut = absl::StrContains(line, R"("caller_names")") ||
                     absl::StrContains(line, R"("scope_count")");
    if (!absl::StrContains(line, R"("msg":"audit")") || !cut) continue;
    ++audited;
    EXPECT_LT(line.size(), 1024u) << line;
  }
  EXPECT_GE(audited, 6);
}

// A certificate the broker cannot read unambiguously (more SANs than it
// reads) is refused for every RPC, again and again (its decision is kept),
// and each refusal is audited with an empty caller, as any unknown caller.
TEST_F(BrokerIntegrationTest, UnreadableCertificateIsRefusedAndAuditedEveryTime) {
  CertFactory::LeafOptions crowded{.common_name = "crowded"};
  for (int i = 0; i <= kMaxPeerSubjectAltNames; ++i) {
    crowded.dns_sans.push_back(absl::StrCat("n", i, ".internal"));
  }
  BrokerHarness::Options options;
  options.extra_certificates = {{"crowded", crowded}};
  StartBroker(options);
  v1::GetTokenRequest get;
  get.set_tenant("acme");
  for (int i = 0; i < 3; ++i) {
    const grpc::Status status = Get("crowded", get).status;
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << i;
    EXPECT_THAT(status.error_message(),
                HasSubstr("subject alternative names")) << i;
  }
  ASSERT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"GetToken","caller":"",)", R"("tenant":"acme")",
       R"("outcome":"PERMISSION_DENIED")"},
      kRpcTimeout));
}

// GetToken parses its own request (a raw method, token_service.h): bytes
// that are not a GetTokenRequest are refused with INVALID_ARGUMENT and
// audited with their caller, and the same connection's next call gets its
// token.
TEST_F(BrokerIntegrationTest, BytesThatAreNotAGetTokenRequestAreRefusedAndAudited) {
  StartBroker();
  auto channel = harness_->Channel("payments");
  grpc::GenericStub stub(channel);
  // Field 1 (tenant) announced 100 bytes long, with 3 present.
  const grpc::Slice slice(std::string("\x0a\x64" "abc", 5));
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  Mutex mu;
  CondVar cv;
  std::optional<grpc::Status> status;
  auto ctx = Context();
  stub.UnaryCall(ctx.get(), "/treezor.broker.v1.TokenService/GetToken",
                 grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   MutexLock lock(&mu);
                   status = std::move(s);
                   cv.SignalAll();
                 });
  {
    MutexLock lock(&mu);
    while (!status.has_value()) cv.Wait(&mu);
  }
  EXPECT_EQ(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status->error_message(), HasSubstr("GetTokenRequest"));
  EXPECT_EQ(response.Length(), 0u);
  ASSERT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"GetToken","caller":"uri:spiffe://corp/payments,cn:payments")",
       R"("outcome":"INVALID_ARGUMENT")"},
      kRpcTimeout));
  v1::GetTokenRequest good;
  good.set_tenant("acme");
  auto token_stub = v1::TokenService::NewStub(channel);
  v1::GetTokenResponse token;
  const grpc::Status ok = token_stub->GetToken(Context().get(), good, &token);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  RememberToken(token.access_token());
  EXPECT_FALSE(token.access_token().empty());
}

// Each gRPC thread keeps its last few decisions keyed by the caller's
// connection: gRPC's auth context of the connection, which the slot holds
// (token_service.cc). Two callers whose certificates have exactly the same
// PEM length, and different rights, alternate, each call on a new connection
// (Get opens one): the two kinds of connection allocate alike, so a closed
// connection's auth context address is often the next one's, and a slot
// that did not hold its context would answer the next connection with the
// other caller's decision (this test catches that, most runs, within 60
// rounds). Each gets its own answer.
TEST_F(BrokerIntegrationTest, CertificatesOfEqualPemLengthGetTheirOwnDecisions) {
  // RSA signatures have a fixed length, and the names differ in one
  // character: the certificates differ only in their bytes, rarely in size.
  const CertFactory::LeafOptions twin_a{
      .common_name = "twin-a",
      .uri_sans = {"spiffe://corp/twin-a"},
      .key_type = CertFactory::KeyType::kRsa2048};
  CertFactory::LeafOptions twin_b = twin_a;
  twin_b.common_name = "twin-b";
  twin_b.uri_sans = {"spiffe://corp/twin-b"};
  StartBroker({.extra_certificates = {{"twin-a", twin_a}, {"twin-b", twin_b}},
               .extra_callers = R"({"identity": "spiffe://corp/twin-a", "tenants": ["acme"]},
                                   {"identity": "spiffe://corp/twin-b", "tenants": ["globex"]},)"});
  auto pem = [&](const std::string& name) {
    return testing::ReadFileOrDie(harness_->CallerFiles(name).cert_file);
  };
  // A serial number's DER length can differ by a byte: issue twin-b again
  // until the sizes match (each issue matches with probability > 1/2).
  for (int i = 0; i < 30 && pem("twin-a").size() != pem("twin-b").size(); ++i) {
    ASSERT_OK(harness_->IssueInternal("twin-b", twin_b));
  }
  ASSERT_EQ(pem("twin-a").size(), pem("twin-b").size());
  ASSERT_NE(pem("twin-a"), pem("twin-b"));
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(Get("twin-a", "acme").status.ok()) << i;
    ASSERT_EQ(Get("twin-a", "globex").status.error_code(),
              grpc::StatusCode::PERMISSION_DENIED) << i;
    ASSERT_TRUE(Get("twin-b", "globex").status.ok()) << i;
    ASSERT_EQ(Get("twin-b", "acme").status.error_code(),
              grpc::StatusCode::PERMISSION_DENIED) << i;
  }
}

// A gRPC thread keeps the decisions of its last few connections, each
// holding the connection's auth context alive; one whose auth context holds
// more than 16 KiB (a hostile peer's chain or names) is not kept, and every
// call of it is decided again — correctly.
TEST_F(BrokerIntegrationTest, ConnectionsWithLargeAuthContextsAreDecidedPerCall) {
  // 95 DNS names of ~150 bytes: ~14 KiB of names, a ~20 KiB PEM, within
  // what the identity parser accepts (100 names, 64 KiB).
  CertFactory::LeafOptions big{.common_name = "big",
                               .uri_sans = {"spiffe://corp/big"}};
  for (int i = 0; i < 95; ++i) {
    big.dns_sans.push_back(absl::StrCat(std::string(60, 'a'), ".",
                                        std::string(60, 'b'), ".n", i,
                                        ".big.internal"));
  }
  StartBroker({.extra_certificates = {{"big", big}},
               .extra_callers = R"({"identity": "spiffe://corp/big", "tenants": ["acme"]},)"});
  ASSERT_GT(testing::ReadFileOrDie(harness_->CallerFiles("big").cert_file).size(),
            16u * 1024);
  TokenService& service = harness_->broker().token_service();
  auto calls_on_one_connection = [&](const std::string& caller, int n) {
    auto stub = v1::TokenService::NewStub(harness_->Channel(caller));
    v1::GetTokenRequest request;
    request.set_tenant("acme");
    const uint64_t before = service.slow_decisions();
    for (int i = 0; i < n; ++i) {
      v1::GetTokenResponse response;
      const grpc::Status status =
          stub->GetToken(Context().get(), request, &response);
      EXPECT_TRUE(status.ok()) << caller << " call " << i << ": "
                               << status.error_message();
      EXPECT_FALSE(response.access_token().empty());
    }
    return service.slow_decisions() - before;
  };
  // A usual caller: decided once per gRPC thread that serves its connection
  // (a handful), not per call.
  EXPECT_LE(calls_on_one_connection("payments", 100), 50u);
  // The large one: every call.
  EXPECT_EQ(calls_on_one_connection("big", 40), 40u);
  // Still refused where the policy says so.
  EXPECT_EQ(Get("big", "globex").status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(BrokerIntegrationTest, PortAlreadyInUseIsAStartUpError) {
  StartBroker();
  auto config = LoadConfigFile(harness_->config_path());
  ASSERT_OK(config);
  config->set_listen_address(harness_->target());
  config->clear_health_listen_address();
  auto second = BrokerServer::Start(*config);
  EXPECT_THAT(second, testing::StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr("listenAddress")));
}

// --- Open WatchToken streams per caller are capped (issue 11, item 2).

using WatchStreamCapTest = RevocationTest;

TEST_F(WatchStreamCapTest, StreamsPastTheCapAreRefusedUntilOneEnds) {
  StartBroker({.extra_config = R"("limits": {"maxWatchStreamsPerCaller": 2},)"});
  WaitForWarmUp();
  constexpr char kPaymentsId[] = "spiffe://corp/payments";
  TokenService& service = harness_->broker().token_service();
  auto first = Watch("payments", "acme");
  auto second = Watch("payments", "acme", {"legal"});
  ASSERT_TRUE(service.WaitForOpenWatchesOf(kPaymentsId, 2, kRpcTimeout));

  // One more is refused, naming the limit and the caller.
  {
    auto stub = v1::TokenService::NewStub(harness_->Channel("payments"));
    auto ctx = Context();
    v1::WatchTokenRequest request;
    request.set_tenant("acme");
    auto reader = stub->WatchToken(ctx.get(), request);
    v1::GetTokenResponse r;
    EXPECT_FALSE(reader->Read(&r));
    const grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(),
                HasSubstr(R"(limits.maxWatchStreamsPerCaller (2) reached for )"
                          R"(caller "spiffe://corp/payments")"));
  }
  EXPECT_TRUE(NoSecretsInLogs::log().WaitForLine(
      {R"("rpc":"WatchToken")", R"("outcome":"RESOURCE_EXHAUSTED")",
       "limits.maxWatchStreamsPerCaller (2)"},
      kRpcTimeout));
  // The refusal took no slot; another caller has its own.
  EXPECT_TRUE(service.WaitForOpenWatchesOf(kPaymentsId, 2, kRpcTimeout));
  auto cards = Watch("cards", "globex");
  EXPECT_TRUE(service.WaitForOpenWatchesOf("cards.internal", 1, kRpcTimeout));

  // The open streams keep receiving: the renewal of acme's default scopes
  // reaches `first`.
  Renew(1);
  v1::GetTokenResponse renewed;
  ASSERT_TRUE(first->reader->Read(&renewed));
  RememberToken(renewed.access_token());

  // A stream that ends frees its slot.
  second->ctx.TryCancel();
  second->reader->Finish();
  ASSERT_TRUE(service.WaitForOpenWatchesOf(kPaymentsId, 1, kRpcTimeout));
  auto third = Watch("payments", "acme");
  EXPECT_TRUE(service.WaitForOpenWatchesOf(kPaymentsId, 2, kRpcTimeout));
  for (auto* w : {first.get(), third.get(), cards.get()}) {
    w->ctx.TryCancel();
    w->reader->Finish();
  }
  EXPECT_TRUE(service.WaitForOpenWatchesOf(kPaymentsId, 0, kRpcTimeout));
}

}  // namespace
}  // namespace treezor::broker
