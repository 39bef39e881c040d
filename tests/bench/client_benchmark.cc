// The client library's two costs, side by side in one run, against a real
// broker on loopback (BrokerHarness: mTLS with real certificates):
//   BM_CacheHitGetToken      TokenClient::GetToken answered from its cache
//   BM_CacheHitSharedToken   TokenClient::GetSharedToken, same, no copy
//   BM_CacheHitHeader        TokenClient::AuthorizationHeader, same
//   BM_GetTokenRpcRoundTrip  one GetToken RPC over the mTLS channel (the
//                            broker answers from its own cache)
// The hit is the hot path of every service that calls Treezor (goal: under
// 100 ns); the RPC is what each call would cost without the client cache.
//
// GetToken and GetSharedToken run with one and two threads on the same
// entry: the two-thread run shows whether the threads slow each other down
// (contention on shared cache lines). How to read a threads:2 run: Google
// Benchmark's "Time" is the wall time per call of both threads together (a
// throughput: half a thread's own time when they run in parallel), "CPU" the
// CPU time per call, and the counter `thread_ns` each thread's own wall time
// per call, averaged over the threads. Without contention, thread_ns and CPU
// equal the threads:1 run's. On a busy 2-core machine the threads also wait
// for a core, which raises thread_ns but not CPU: contention raises both.
//
//   build/tests/client_benchmark                # full run
//   build/tests/client_benchmark --benchmark_min_time=0.001   # smoke
#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "client/token_client.h"
#include "grpcpp/client_context.h"
#include "server/logging.h"
#include "tests/testing/broker_harness.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::client {
namespace {

namespace v1 = ::treezor::broker::v1;
using ::treezor::broker::testing::BrokerHarness;

// One broker and one client for the whole run. The client keeps its default
// clock (absl::Now), as in production: the broker's fake-clock tokens expire
// later than now, so they are fresh.
struct Fixture {
  Fixture() {
    // An audit line per RPC would dominate the round trip and flood stderr.
    broker::SetLogSink([](absl::string_view) {});
    if (absl::Status s = harness.Start(); !s.ok()) {
      std::fprintf(stderr, "broker: %s\n", s.ToString().c_str());
      std::abort();
    }
    const auto files = harness.CallerFiles("payments");
    TokenClientOptions options;
    options.connection = {.address = harness.target(),
                          .ca_file = harness.internal_ca_file(),
                          .cert_file = files.cert_file,
                          .key_file = files.key_file};
    auto created = TokenClient::Create(options);
    if (!created.ok()) {
      std::fprintf(stderr, "client: %s\n", created.status().ToString().c_str());
      std::abort();
    }
    client = *std::move(created);
    stub = v1::TokenService::NewStub(harness.Channel("payments"));
  }

  BrokerHarness harness;
  std::unique_ptr<TokenClient> client;
  std::unique_ptr<v1::TokenService::Stub> stub;
};

// Made by the first benchmark that runs, destroyed by main.
std::unique_ptr<Fixture> fixture;

Fixture& GetFixture() {
  if (fixture == nullptr) fixture = std::make_unique<Fixture>();
  return *fixture;
}

const std::vector<std::string>& Scopes() {
  static const auto* const scopes =
      new std::vector<std::string>{"read_write", "admin"};
  return *scopes;
}

// Sets the `thread_ns` counter (see the top of the file) from the wall time
// of this thread's benchmark loop: construct it just before the loop.
class ThreadWallTime {
 public:
  explicit ThreadWallTime(benchmark::State& state)
      : state_(state), start_(absl::Now()) {}
  ~ThreadWallTime() {
    if (state_.iterations() == 0) return;
    state_.counters["thread_ns"] = benchmark::Counter(
        absl::ToDoubleNanoseconds(absl::Now() - start_) /
            static_cast<double>(state_.iterations()),
        benchmark::Counter::kAvgThreads);
  }

 private:
  benchmark::State& state_;
  const absl::Time start_;
};

void BM_CacheHitGetToken(benchmark::State& state) {
  TokenClient& client = *GetFixture().client;
  if (!client.GetToken("acme", Scopes()).ok()) {  // warm the entry
    state.SkipWithError("GetToken failed");
    return;
  }
  {
    ThreadWallTime wall(state);
    for (auto _ : state) {
      absl::StatusOr<Token> token = client.GetToken("acme", Scopes());
      benchmark::DoNotOptimize(token);
    }
  }
}
BENCHMARK(BM_CacheHitGetToken)->Threads(1)->Threads(2);

void BM_CacheHitSharedToken(benchmark::State& state) {
  TokenClient& client = *GetFixture().client;
  if (!client.GetSharedToken("acme", Scopes()).ok()) {
    state.SkipWithError("GetSharedToken failed");
    return;
  }
  {
    ThreadWallTime wall(state);
    for (auto _ : state) {
      absl::StatusOr<std::shared_ptr<const Token>> token =
          client.GetSharedToken("acme", Scopes());
      benchmark::DoNotOptimize(token);
    }
  }
}
BENCHMARK(BM_CacheHitSharedToken)->Threads(1)->Threads(2);

void BM_CacheHitHeader(benchmark::State& state) {
  TokenClient& client = *GetFixture().client;
  if (!client.GetToken("acme", Scopes()).ok()) {
    state.SkipWithError("GetToken failed");
    return;
  }
  for (auto _ : state) {
    absl::StatusOr<std::string> header =
        client.AuthorizationHeader("acme", Scopes());
    benchmark::DoNotOptimize(header);
  }
}
BENCHMARK(BM_CacheHitHeader);

void BM_GetTokenRpcRoundTrip(benchmark::State& state) {
  v1::TokenService::Stub& stub = *GetFixture().stub;
  v1::GetTokenRequest request;
  request.set_tenant("acme");
  for (const std::string& s : Scopes()) request.add_scopes(s);
  v1::GetTokenResponse response;
  for (auto _ : state) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::Status status = stub.GetToken(&context, request, &response);
    if (!status.ok()) {
      state.SkipWithError(status.error_message().c_str());
      return;
    }
  }
}
BENCHMARK(BM_GetTokenRpcRoundTrip)->UseRealTime();

}  // namespace
}  // namespace treezor::client

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // The client before the broker it talks to.
  treezor::client::fixture.reset();
  return 0;
}
