// Operations: Prometheus metrics, the BrokerAdmin API, hot reload (file
// change, Kubernetes-style symlink swap, admin RPC), credential rotation and
// readiness — against a real broker on loopback (BrokerHarness). SIGHUP is
// covered by tests/integration/broker_process_test.sh on the real binary.
#include <curl/curl.h>

#include <filesystem>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/token_digest.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_harness.h"
#include "tests/testing/metrics_text.h"
#include "tests/testing/log_capture.h"
#include "tests/testing/status_matchers.h"
#include "treezor/broker/v1/admin_service.grpc.pb.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::broker {
namespace {

using testing::SampleValue;

using ::testing::HasSubstr;
using ::testing::Not;
using testing::BrokerHarness;
using testing::WriteFileOrDie;
using HealthResponse = grpc::health::v1::HealthCheckResponse;

constexpr absl::Duration kTimeout = absl::Seconds(10);

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(kTimeout));
  return ctx;
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET http://127.0.0.1:<port>/metrics with libcurl; the body, or nullopt
// (with the reason in `error`) when the request failed.
std::optional<std::string> TryScrape(int port, std::string* error = nullptr) {
  std::string body;
  CURL* curl = curl_easy_init();
  const std::string url = absl::StrCat("http://127.0.0.1:", port, "/metrics");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  if (code != CURLE_OK) {
    if (error != nullptr) *error = curl_easy_strerror(code);
    return std::nullopt;
  }
  return body;
}

std::string Scrape(int port) {
  std::string error;
  std::optional<std::string> body = TryScrape(port, &error);
  EXPECT_TRUE(body.has_value()) << error;
  return body.value_or("");
}

class OperationsTest : public ::testing::Test {
 protected:
  void StartBroker(BrokerHarness::Options options = {}) {
    harness_ = std::make_unique<BrokerHarness>(std::move(options));
    ASSERT_OK(harness_->Start());
  }

  grpc::Status Get(const std::string& caller, const std::string& tenant,
                   v1::GetTokenResponse* response = nullptr) {
    v1::GetTokenResponse ignored;
    v1::GetTokenRequest request;
    request.set_tenant(tenant);
    return v1::TokenService::NewStub(harness_->Channel(caller))
        ->GetToken(Context().get(), request, response ? response : &ignored);
  }

  std::unique_ptr<v1::BrokerAdmin::Stub> Admin(const std::string& caller) {
    return v1::BrokerAdmin::NewStub(harness_->Channel(caller));
  }

  HealthResponse::ServingStatus Health(const std::string& service = "") {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    HealthResponse response;
    auto stub = grpc::health::v1::Health::NewStub(harness_->HealthChannel());
    EXPECT_TRUE(stub->Check(Context().get(), request, &response).ok());
    return response.status();
  }

  bool WaitForGeneration(int64_t n) {
    return harness_->broker().progress().WaitForGeneration(n, kTimeout);
  }

  void WriteConfig(const std::string& json) {
    WriteFileOrDie(harness_->config_path(), json);
  }

  std::unique_ptr<BrokerHarness> harness_;
};

TEST_F(OperationsTest, MetricsMoveAsTheScenarioDrivesThem) {
  StartBroker({.metrics_port = true});
  ASSERT_TRUE(harness_->broker().progress().WaitForFetches(2, kTimeout));  // warm-up
  const int port = harness_->broker().metrics_port();
  ASSERT_GT(port, 0);
  const std::string ok_rpcs =
      R"(treezor_broker_rpcs_total{code="OK",method="GetToken"})";
  const std::string denied_rpcs =
      R"(treezor_broker_rpcs_total{code="PERMISSION_DENIED",method="GetToken"})";
  const std::string hits = R"(treezor_broker_cache_requests_total{result="hit"})";
  std::string before = Scrape(port);
  EXPECT_EQ(SampleValue(before, ok_rpcs), 0);

  ASSERT_TRUE(Get("payments", "acme").ok());
  ASSERT_TRUE(Get("payments", "acme").ok());
  EXPECT_EQ(Get("payments", "globex").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  std::string after = Scrape(port);
  EXPECT_EQ(SampleValue(after, ok_rpcs), 2);
  EXPECT_EQ(SampleValue(after, denied_rpcs), 1);
  EXPECT_GE(SampleValue(after, hits), 1);
  EXPECT_GE(SampleValue(after, "treezor_broker_get_token_latency_seconds_count"), 3);
  EXPECT_EQ(SampleValue(after, R"(treezor_broker_upstream_requests_total{grant_type="client_credentials",outcome="ok",tenant="acme"})"),
            1);
  EXPECT_EQ(SampleValue(after, R"(treezor_broker_token_expiry_seconds{scopes="read_write",tenant="acme"})"),
            3600);
  EXPECT_EQ(SampleValue(after, "treezor_broker_upstream_in_flight"), 0);
  EXPECT_EQ(SampleValue(after, "treezor_broker_config_generation"), 1);
  EXPECT_EQ(SampleValue(after, "treezor_broker_watch_streams"), 0);

  // A failing renewal shows up per entry.
  harness_->treezor().SetPersistentFault(testing::FakeTreezor::Fault::Status(503));
  const int64_t done = harness_->broker().progress().fetches_done();
  harness_->clock().Advance(absl::Minutes(49));
  // acme's and globex's default tokens both fall due, and both fail.
  ASSERT_TRUE(harness_->broker().progress().WaitForFetches(done + 2, kTimeout));
  const std::string failing = Scrape(port);
  const std::string failures =
      R"(treezor_broker_token_consecutive_failures{scopes="read_write",tenant="acme"})";
  EXPECT_GE(SampleValue(failing, failures), 1);
  EXPECT_GE(SampleValue(failing, R"(treezor_broker_upstream_requests_total{grant_type="client_credentials",outcome="http_5xx",tenant="acme"})"),
            1);
  ASSERT_TRUE(Get("payments", "acme").ok());  // served while failing
  EXPECT_EQ(SampleValue(Scrape(port), R"(treezor_broker_tokens_served_while_failing_total{scopes="read_write",tenant="acme"})"),
            1);
  // No secret, no token in the exposition.
  const std::string all = Scrape(port);
  EXPECT_THAT(all, Not(HasSubstr(testing::kClientSecret)));
  EXPECT_THAT(all, Not(HasSubstr("eyJ")));
}

TEST_F(OperationsTest, AdminRpcsAreForAdminsOnly) {
  StartBroker();
  ASSERT_TRUE(Get("payments", "acme").ok());
  for (const std::string caller : {"payments", "intruder"}) {
    auto admin = Admin(caller);
    v1::ListTokensResponse list;
    EXPECT_EQ(admin->ListTokens(Context().get(), {}, &list).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    v1::RefreshTokenRequest refresh;
    refresh.set_tenant("acme");
    v1::RefreshTokenResponse refreshed;
    EXPECT_EQ(admin->RefreshToken(Context().get(), refresh, &refreshed)
                  .error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    v1::ReloadConfigResponse reloaded;
    EXPECT_EQ(admin->ReloadConfig(Context().get(), {}, &reloaded).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_F(OperationsTest, ListTokensShowsStateWithoutTokens) {
  StartBroker();
  v1::GetTokenResponse token;
  ASSERT_TRUE(Get("payments", "acme", &token).ok());
  v1::ListTokensResponse list;
  ASSERT_TRUE(Admin("oncall")->ListTokens(Context().get(), {}, &list).ok());
  EXPECT_EQ(list.config_generation(), 1);
  const v1::TokenEntry* acme = nullptr;
  for (const auto& e : list.entries()) {
    if (e.tenant() == "acme") acme = &e;
  }
  ASSERT_NE(acme, nullptr);
  EXPECT_EQ(acme->state(), v1::TokenEntry::FRESH);
  EXPECT_EQ(acme->upstream_requests(), 1);
  EXPECT_EQ(acme->expires_at().seconds(), token.expires_at().seconds());
  EXPECT_EQ(acme->token_fingerprint(),
            TokenSha256Hex(token.access_token()).substr(0, 12));
  EXPECT_THAT(list.DebugString(), Not(HasSubstr(token.access_token())));
  EXPECT_THAT(list.DebugString(), Not(HasSubstr(testing::kClientSecret)));
}

TEST_F(OperationsTest, RefreshTokenForcesARenewal) {
  StartBroker();
  v1::GetTokenResponse before;
  ASSERT_TRUE(Get("payments", "acme", &before).ok());
  harness_->clock().Advance(absl::Minutes(10));
  v1::RefreshTokenRequest request;
  request.set_tenant("acme");
  v1::RefreshTokenResponse response;
  ASSERT_TRUE(
      Admin("oncall")->RefreshToken(Context().get(), request, &response).ok());
  EXPECT_EQ(response.expires_at().seconds(),
            before.expires_at().seconds() + 600);
  v1::GetTokenResponse after;
  ASSERT_TRUE(Get("payments", "acme", &after).ok());
  EXPECT_NE(after.access_token(), before.access_token());
  EXPECT_EQ(response.token_fingerprint(),
            TokenSha256Hex(after.access_token()).substr(0, 12));
}

// Issue 13: a caller's policy decision is kept per certificate (and per
// gRPC thread), never answered for another certificate.
TEST_F(OperationsTest, EachCertificateGetsItsOwnDecisionCallAfterCall) {
  StartBroker();
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(Get("payments", "acme").ok()) << i;
    ASSERT_EQ(Get("payments", "globex").error_code(),
              grpc::StatusCode::PERMISSION_DENIED) << i;
    ASSERT_TRUE(Get("cards", "globex").ok()) << i;
    ASSERT_EQ(Get("cards", "acme").error_code(),
              grpc::StatusCode::PERMISSION_DENIED) << i;
  }
}

TEST_F(OperationsTest, ReloadByFileChangeAddsAndRemovesTenantsAndCallers) {
  StartBroker();
  // Many calls first, so that the decisions of the old policy are kept on
  // every gRPC thread that served one (issue 13): none may outlive it.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Get("cards", "globex").ok()) << i;
  // Add tenant "initech" for payments; drop globex (and its caller).
  const std::string next = absl::StrReplaceAll(
      harness_->RenderConfig("", "", harness_->TenantJson("initech")),
      {{R"({"identity": "spiffe://corp/payments", "tenants": ["acme"]})",
        R"({"identity": "spiffe://corp/payments", "tenants": ["acme", "initech"]})"},
       {R"({"identity": "cards.internal", "tenants": ["globex"]})",
        R"({"identity": "cards.internal", "tenants": ["acme"]})"}});
  // Remove globex's tenant block.
  std::string without_globex = next;
  const size_t start = without_globex.find(R"({"name": "globex")");
  ASSERT_NE(start, std::string::npos);
  const size_t end = without_globex.find("}}", start) + 2;
  without_globex.erase(start, end - start);
  without_globex = absl::StrReplaceAll(without_globex, {{"},\n    \n  ]", "}\n  ]"}});
  WriteConfig(without_globex);
  ASSERT_TRUE(WaitForGeneration(2)) << without_globex;
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(Get("payments", "initech").ok()) << i;
    EXPECT_EQ(Get("cards", "globex").error_code(),
              grpc::StatusCode::PERMISSION_DENIED) << i;
    EXPECT_TRUE(Get("cards", "acme").ok()) << i;  // caller policy changed too
  }
}

TEST_F(OperationsTest, BadReloadKeepsTheOldConfig) {
  StartBroker({.metrics_port = true});
  const int port = harness_->broker().metrics_port();
  WriteConfig(R"({"listenAddress": "127.0.0.1:1", "tenants": [], "bogus": 1})");
  v1::ReloadConfigResponse response;
  ASSERT_TRUE(
      Admin("oncall")->ReloadConfig(Context().get(), {}, &response).ok());
  EXPECT_FALSE(response.applied());
  EXPECT_THAT(response.error(), HasSubstr("bogus"));
  EXPECT_EQ(response.config_generation(), 1);
  EXPECT_TRUE(Get("payments", "acme").ok());  // still serving
  EXPECT_GE(SampleValue(Scrape(port),
                  R"(treezor_broker_config_reloads_total{outcome="rejected"})"),
            1);
  EXPECT_EQ(harness_->broker().generation(), 1);
}

TEST_F(OperationsTest, ReloadRpcReportsRestartRequiredFields) {
  // The RPC, not the file watcher, must be the one that applies the change.
  StartBroker({.file_poll_interval = absl::Hours(1)});
  WriteConfig(harness_->RenderConfig(
      R"("upstream": {"maxConcurrentRequests": 3},)", ""));
  v1::ReloadConfigResponse response;
  ASSERT_TRUE(
      Admin("oncall")->ReloadConfig(Context().get(), {}, &response).ok());
  EXPECT_TRUE(response.applied()) << response.error();
  EXPECT_THAT(response.restart_required(), ::testing::ElementsAre("upstream"));
  EXPECT_EQ(response.config_generation(), 2);
}

TEST_F(OperationsTest, ReloadSeesAKubernetesSymlinkSwap) {
  StartBroker();
  // Lay the config out as a ConfigMap volume does: broker.json ->
  // ..data/broker.json, ..data -> ..2026_v1; an update swaps ..data.
  namespace fs = std::filesystem;
  const fs::path dir = harness_->dir().File("configmap");
  fs::create_directories(dir / "..v1");
  fs::create_directories(dir / "..v2");
  fs::copy_file(harness_->config_path(), dir / "..v1" / "broker.json");
  fs::create_directory_symlink("..v1", dir / "..data");
  // The watched path becomes a symlink into the volume.
  fs::remove(harness_->config_path());
  fs::create_symlink(dir / "..data" / "broker.json", harness_->config_path());
  ASSERT_EQ(harness_->broker().generation(), 1);

  WriteFileOrDie((dir / "..v2" / "broker.json").string(),
                 absl::StrReplaceAll(
                     harness_->RenderConfig("", "",
                                            harness_->TenantJson("initech")),
                     {{R"("tenants": ["acme"]})",
                       R"("tenants": ["acme", "initech"]})"}}));
  fs::create_directory_symlink("..v2", dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");  // atomic swap
  ASSERT_TRUE(WaitForGeneration(2));
  EXPECT_TRUE(Get("payments", "initech").ok());
}

// The exposer serves during the drain and stops before anything its scrape
// reads (cache, services) is destroyed: scraping all through a shutdown
// never touches freed memory (the AddressSanitizer build proves it).
TEST_F(OperationsTest, MetricsScrapedThroughoutShutdownNeverReadFreedState) {
  StartBroker({.metrics_port = true});
  ASSERT_TRUE(harness_->broker().progress().WaitUntilReady(kTimeout));
  const int port = harness_->broker().metrics_port();
  ASSERT_GT(port, 0);
  Mutex mu;
  CondVar cv;
  bool stop = false;
  int scrapes = 0;
  std::thread scraper([&] {
    for (;;) {
      std::optional<std::string> body = TryScrape(port);
      MutexLock lock(&mu);
      if (body.has_value()) ++scrapes;
      cv.SignalAll();
      if (stop) return;
    }
  });
  {
    MutexLock lock(&mu);
    cv.WaitUntil(&mu, absl::Now() + kTimeout, [&] { return scrapes >= 3; });
    EXPECT_GE(scrapes, 3) << "the scraper never got an answer";
  }
  harness_->StopBroker();  // the scraper keeps going all through
  {
    MutexLock lock(&mu);
    stop = true;
  }
  scraper.join();
}

TEST_F(OperationsTest, RotatedSecretRecoversARefusedTenantWithoutWaiting) {
  // acme starts with a revoked secret, and a refused credential waits an
  // hour before the next attempt...
  StartBroker({.extra_config = R"("renewal": {"refusedBackoff": "3600s"},)",
               .acme_secret = "revoked-secret"});
  ASSERT_TRUE(harness_->broker().progress().WaitForFetches(2, kTimeout));  // warm-up
  v1::GetTokenResponse response;
  grpc::Status refused = Get("payments", "acme", &response);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("invalid_client"));
  // ... unless a new secret appears: the watcher lifts the backoff at once.
  // The entry never had a token and nobody waits for it, so nothing is
  // fetched in the background (issue 11: work nobody waits for is not done);
  // the next caller fetches with the new secret instead of getting the
  // refusal for another hour.
  testing::LogCapture log;
  WriteFileOrDie(harness_->dir().File("acme.secret"), testing::kClientSecret);
  ASSERT_TRUE(log.WaitForLine(
      {"credential file changed; retrying failed renewals now", "acme"},
      kTimeout));
  grpc::Status ok = Get("payments", "acme", &response);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

// The server's own certificate, as a new client connection sees it.
std::string ServerCertificateCn(BrokerHarness& harness) {
  auto stub = v1::TokenService::NewStub(harness.Channel("payments"));
  auto ctx = Context();
  v1::GetTokenRequest request;
  request.set_tenant("acme");
  v1::GetTokenResponse response;
  if (!stub->GetToken(ctx.get(), request, &response).ok()) return "";
  auto auth = ctx->auth_context();
  for (const auto& v : auth->FindPropertyValues("x509_common_name")) {
    return std::string(v.data(), v.size());
  }
  return "";
}

TEST_F(OperationsTest, RotatedServerCertificateIsServedWithoutRestart) {
  StartBroker();
  ASSERT_EQ(ServerCertificateCn(*harness_), "broker");
  // cert-manager style rotation: same files, new certificate (same CA).
  ASSERT_OK_AND_ASSIGN(testing::CertPaths rotated,
                       harness_->IssueInternal("broker", [] {
                         auto o = testing::CertFactory::ServerLeaf("broker-rotated");
                         return o;
                       }()));
  // gRPC's certificate provider re-reads the files every refreshInterval
  // (1 s here): new connections get the new certificate within a few.
  const absl::Time deadline = absl::Now() + kTimeout;
  std::string cn;
  while ((cn = ServerCertificateCn(*harness_)) != "broker-rotated" &&
         absl::Now() < deadline) {
  }
  EXPECT_EQ(cn, "broker-rotated");
}

TEST_F(OperationsTest, ReadinessWaitsForDefaultTokensAndDropsWhenDraining) {
  StartBroker({.hold_upstream = true});
  ASSERT_TRUE(harness_->treezor().WaitForHeld(1, kTimeout));
  EXPECT_EQ(Health(), HealthResponse::NOT_SERVING);
  EXPECT_EQ(Health("liveness"), HealthResponse::SERVING);
  // A watch sees the transitions as they happen (on the mTLS port: the
  // probe port serves Check only).
  auto stub = grpc::health::v1::Health::NewStub(harness_->Channel("payments"));
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest request;
  auto reader = stub->Watch(&ctx, request);
  HealthResponse status;
  ASSERT_TRUE(reader->Read(&status));
  EXPECT_EQ(status.status(), HealthResponse::NOT_SERVING);
  // Both tenants' default tokens arrive; then SERVING.
  harness_->treezor().ReleaseRequests();
  ASSERT_TRUE(reader->Read(&status));
  EXPECT_EQ(status.status(), HealthResponse::SERVING);
  EXPECT_EQ(Health(), HealthResponse::SERVING);
  // Draining: NOT_SERVING before the end.
  std::thread stopper([&] { harness_->StopBroker(); });
  ASSERT_TRUE(reader->Read(&status));
  EXPECT_EQ(status.status(), HealthResponse::NOT_SERVING);
  stopper.join();
}

}  // namespace
}  // namespace treezor::broker
