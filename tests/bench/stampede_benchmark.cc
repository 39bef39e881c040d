// stampede_benchmark: N callers ask at the same moment for a token nobody has
// asked for yet (one cold (tenant, scope set) entry). Single-flight means the
// Treezor double sees exactly one request, and every caller gets the token
// as soon as that one fetch is done.
//
//   stampede_benchmark --callers=1000 --rounds=5 --json_out=stampede.json
//
// A real broker (BrokerHarness: TLS certificates, config, BrokerServer) on
// loopback with the in-process Treezor double, on real time. Each round uses
// a fresh scope, hence a fresh cold entry, and counts the double's requests
// for that scope:
//  - "race" rounds: the N calls are started as fast as one thread can over
//    `--channels` warm connections; reports the time from the first call
//    started until every caller has its token, and per-caller latency.
//  - one "gated" round: the double holds the one fetch at its gate while all
//    N calls are started and given `--gate_settle` to reach the broker, so
//    they all wait on it; then it lets the fetch go and reports the time
//    from release until every caller has its token.
// Every round also counts the distinct tokens the callers received: 1 when
// they all shared the one fetch.
// Exit status 1 if a round saw other than exactly one upstream request or one
// token, or a caller failed.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "server/logging.h"
#include "tests/bench/latency_stats.h"
#include "tests/testing/broker_harness.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

ABSL_FLAG(int, callers, 1000, "Concurrent cold callers per round.");
ABSL_FLAG(int, channels, 10, "Connections the callers are spread over.");
ABSL_FLAG(int, rounds, 5, "Race rounds (each on a fresh entry).");
ABSL_FLAG(bool, gated, true, "Also run one gated round.");
ABSL_FLAG(absl::Duration, gate_settle, absl::Milliseconds(500),
          "Gated round: time given to the started calls to reach the broker.");
ABSL_FLAG(absl::Duration, call_timeout, absl::Seconds(30), "Per-call deadline.");
ABSL_FLAG(std::string, json_out, "", "Write the results as JSON here.");

namespace treezor::broker::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
using testing::BrokerHarness;

struct RoundResult {
  std::string kind;
  std::string scope;
  int callers = 0;
  int upstream_requests = 0;
  int64_t failures = 0;
  int distinct_tokens = 0;
  double start_spread_ms = 0;  // first to last call started
  double all_done_ms = 0;      // first started (or release) to last answered
  LatencySummary latency;
  std::string first_error;
};

// The N calls of one round, started from this thread.
class Stampede {
 public:
  Stampede(const std::vector<std::unique_ptr<v1::TokenService::Stub>>* stubs,
           std::string scope, int callers)
      : stubs_(stubs), scope_(std::move(scope)), calls_(callers) {}

  // Starts every call; returns the time the first and last were started.
  void StartAll() {
    started_first_ = SteadyClock::now();
    for (size_t i = 0; i < calls_.size(); ++i) {
      Call& call = calls_[i];
      call.request.set_tenant("acme");
      call.request.add_scopes(scope_);
      call.context.set_deadline(absl::ToChronoTime(
          absl::Now() + absl::GetFlag(FLAGS_call_timeout)));
      call.started = SteadyClock::now();
      (*stubs_)[i % stubs_->size()]->async()->GetToken(
          &call.context, &call.request, &call.response,
          [this, &call](grpc::Status status) { Done(call, status); });
    }
    started_last_ = SteadyClock::now();
  }

  // Waits for every answer; fills the timing and outcome of `result`.
  void Wait(SteadyClock::time_point from, RoundResult* result) {
    MutexLock lock(&mu_);
    while (answered_ < calls_.size()) cv_.Wait(&mu_);
    LatencyStats stats;
    SteadyClock::time_point last = from;
    std::set<std::string> tokens;
    for (const Call& call : calls_) {
      last = std::max(last, call.finished);
      if (call.ok) {
        tokens.insert(call.response.access_token());
        stats.Add(absl::FromChrono(call.finished - call.started));
      } else {
        stats.AddError();
      }
    }
    result->callers = static_cast<int>(calls_.size());
    result->failures = stats.errors();
    result->distinct_tokens = static_cast<int>(tokens.size());
    result->first_error = first_error_;
    result->start_spread_ms =
        absl::ToDoubleMilliseconds(absl::FromChrono(started_last_ - started_first_));
    result->all_done_ms = absl::ToDoubleMilliseconds(absl::FromChrono(last - from));
    result->latency = stats.Summarize(absl::FromChrono(last - started_first_));
  }

  SteadyClock::time_point started_first() const { return started_first_; }

 private:
  struct Call {
    grpc::ClientContext context;
    v1::GetTokenRequest request;
    v1::GetTokenResponse response;
    SteadyClock::time_point started;
    SteadyClock::time_point finished;
    bool ok = false;
  };

  void Done(Call& call, const grpc::Status& status) {
    call.finished = SteadyClock::now();
    call.ok = status.ok() && !call.response.access_token().empty();
    MutexLock lock(&mu_);
    if (!call.ok && first_error_.empty()) {
      first_error_ = absl::StrCat(status.error_code(), " ", status.error_message());
    }
    if (++answered_ == calls_.size()) cv_.SignalAll();
  }

  const std::vector<std::unique_ptr<v1::TokenService::Stub>>* const stubs_;
  const std::string scope_;
  std::vector<Call> calls_;
  SteadyClock::time_point started_first_;
  SteadyClock::time_point started_last_;
  Mutex mu_;
  CondVar cv_;
  size_t answered_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

int CountRequestsForScope(BrokerHarness& h, const std::string& scope) {
  int n = 0;
  for (const auto& r : h.treezor().requests()) {
    auto it = r.params.find("scope");
    if (it != r.params.end() && it->second == scope) ++n;
  }
  return n;
}

int Run() {
  // The audit lines are formatted as usual but not written out: 1000 lines
  // per round on the terminal would say nothing.
  std::atomic<int64_t> log_lines{0};
  SetLogSink([&log_lines](absl::string_view) { log_lines.fetch_add(1); });

  BrokerHarness h(BrokerHarness::Options{.fake_clock = false,
                                         .health_port = false});
  if (absl::Status s = h.Start(); !s.ok()) {
    std::fprintf(stderr, "stampede_benchmark: cannot start: %s\n",
                 s.ToString().c_str());
    return 1;
  }
  // Let the start-up prefetches settle before counting anything.
  for (int i = 0; i < 100; ++i) {
    bool settled = true;
    for (const EntrySnapshot& e : h.broker().cache().Snapshot()) {
      if (e.state != EntrySnapshot::State::kFresh) settled = false;
    }
    if (settled) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  const int callers = absl::GetFlag(FLAGS_callers);
  std::vector<std::unique_ptr<v1::TokenService::Stub>> stubs;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_channels)); ++i) {
    auto channel = h.Channel("payments");
    if (!channel->WaitForConnected(
            absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
      std::fprintf(stderr, "stampede_benchmark: cannot connect\n");
      return 1;
    }
    stubs.push_back(v1::TokenService::NewStub(channel));
    // Warm the connection (TLS handshake, HTTP/2 settings) on a hot entry.
    grpc::ClientContext context;
    v1::GetTokenRequest request;
    request.set_tenant("acme");
    v1::GetTokenResponse response;
    if (grpc::Status s = stubs.back()->GetToken(&context, request, &response);
        !s.ok()) {
      std::fprintf(stderr, "stampede_benchmark: warm-up call failed: %s\n",
                   s.error_message().c_str());
      return 1;
    }
  }

  std::vector<RoundResult> results;
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const bool gated = absl::GetFlag(FLAGS_gated);
  for (int r = 0; r < rounds + (gated ? 1 : 0); ++r) {
    const bool is_gated = r == rounds;
    RoundResult result;
    result.kind = is_gated ? "gated" : "race";
    result.scope = absl::StrCat("stampede-", r);
    Stampede stampede(&stubs, result.scope, callers);
    if (is_gated) h.treezor().HoldRequests();
    stampede.StartAll();
    SteadyClock::time_point from = stampede.started_first();
    if (is_gated) {
      // The one fetch is held; give every call time to reach the broker
      // and join it.
      h.treezor().WaitForHeld(1, absl::Seconds(10));
      absl::SleepFor(absl::GetFlag(FLAGS_gate_settle));
      from = SteadyClock::now();
      h.treezor().ReleaseRequests();
    }
    stampede.Wait(from, &result);
    result.upstream_requests = CountRequestsForScope(h, result.scope);
    results.push_back(result);
  }

  bool ok = true;
  std::printf("\nstampede_benchmark: %d concurrent cold callers on one entry, "
              "%zu connections\n\n",
              callers, stubs.size());
  std::printf("%-6s %-12s %9s %8s %7s %11s %11s %9s %9s\n", "round",
              "scope", "upstream", "failed", "tokens", "spread ms",
              "all done ms", "p50 ms", "p99 ms");
  for (const RoundResult& r : results) {
    std::printf("%-6s %-12s %9d %8lld %7d %11.1f %11.1f %9.2f %9.2f\n",
                r.kind.c_str(), r.scope.c_str(), r.upstream_requests,
                static_cast<long long>(r.failures), r.distinct_tokens,
                r.start_spread_ms,
                r.all_done_ms, r.latency.p50_us / 1000, r.latency.p99_us / 1000);
    if (r.upstream_requests != 1 || r.distinct_tokens != 1 ||
        r.failures != 0) {
      ok = false;
      if (!r.first_error.empty()) {
        std::printf("  first error: %s\n", r.first_error.c_str());
      }
    }
  }
  std::printf("\n%s: exactly 1 upstream request and 1 token per cold entry, "
              "no failed caller\n",
              ok ? "PASS" : "FAIL");

  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream out(path);
    out << "{\n  \"callers\": " << callers << ",\n  \"channels\": "
        << stubs.size() << ",\n  \"rounds\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const RoundResult& r = results[i];
      out << absl::StrFormat(
          "    {\"kind\": \"%s\", \"scope\": \"%s\", \"callers\": %d, "
          "\"upstream_requests\": %d, \"failures\": %d, "
          "\"distinct_tokens\": %d, \"start_spread_ms\": %.2f, "
          "\"all_done_ms\": %.2f, \"latency\": %s}%s\n",
          r.kind, r.scope, r.callers, r.upstream_requests, r.failures,
          r.distinct_tokens, r.start_spread_ms, r.all_done_ms,
          SummaryJson(r.latency), i + 1 < results.size() ? "," : "");
    }
    out << absl::StrFormat("  ],\n  \"pass\": %s\n}\n", ok ? "true" : "false");
  }
  h.StopBroker();
  SetLogSink(nullptr);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace treezor::broker::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Stampede benchmark: N cold callers on one entry -> 1 upstream request.");
  absl::ParseCommandLine(argc, argv);
  return treezor::broker::bench::Run();
}
