// load_generator: drives a running broker over mTLS with two workloads in the
// same run — cached `TokenService/GetToken` and `grpc.health.v1.Health/Check`
// (the no-op floor: same server, same TLS, same HTTP/2 path, no work) — and,
// with --noop_target, a third: Health/Check on a bare callback-API server
// (noop_server: same TLS material, nothing else; the gRPC limit). Reports
// throughput and p50/p90/p99/p99.9 latency for each, and the ratios
// GetToken/Check and Check/bare.
//
//   load_generator --target=127.0.0.1:8443 --ca=ca.crt --cert=c.crt
//       --key=c.key --tenant=bench --channels=4 --concurrency=1,8,32,128
//       --round_duration=2s --rounds=3 --json_out=load.json
//
// How it measures:
//  - Closed loop, swept over concurrency levels: `c` calls in flight in
//    total, spread over `--channels` connections; each finished call starts
//    the next. At every level the workloads run in alternating rounds
//    (G C N, then C N G, ...) so a noisy neighbour hurts all alike.
//  - Open loop at half of GetToken's peak: calls are started at fixed
//    intervals whatever the server does, and latency is counted from the
//    moment a call was due, not sent (no coordinated omission). Both
//    workloads again alternate.
//  - With `--server_pid`, the server's CPU time (utime + stime) per call is
//    read from /proc for each workload: steadier than throughput on a
//    shared machine.
// It is bounded: every round stops after its duration or call budget, every
// call has a deadline, and `--time_limit` stops the whole run.
//
// gRPC callback API: completions run on gRPC's threads, which start the next
// call. Each call slot is sequential, so its samples need no lock.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/client_callback.h"
#include "grpcpp/security/credentials.h"
#include "tests/bench/latency_stats.h"
#include "tests/bench/process_stats.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

ABSL_FLAG(std::string, target, "", "Broker address, host:port (required).");
ABSL_FLAG(std::string, ca, "", "CA bundle (PEM) the server certificate chains to.");
ABSL_FLAG(std::string, cert, "", "Client certificate (PEM) for mTLS.");
ABSL_FLAG(std::string, key, "", "Client private key (PEM).");
ABSL_FLAG(std::string, noop_target, "",
          "A bare no-op server (noop_server), host:port: the third workload.");
ABSL_FLAG(std::string, ssl_target_name_override, "",
          "Name to verify the server certificate against, if not the host.");
ABSL_FLAG(std::string, tenant, "bench", "Tenant asked for in GetToken.");
ABSL_FLAG(std::vector<std::string>, scopes, {},
          "Scopes asked for in GetToken (empty: the tenant's defaults).");
ABSL_FLAG(int, channels, 4, "Connections (one HTTP/2 connection each).");
ABSL_FLAG(std::vector<std::string>, concurrency,
          (std::vector<std::string>{"1", "4", "16", "64"}),
          "Calls in flight in total, swept in this order.");
ABSL_FLAG(absl::Duration, round_duration, absl::Seconds(1),
          "Length of one round of one workload.");
ABSL_FLAG(int, rounds, 3, "Rounds per workload per concurrency level.");
ABSL_FLAG(int64_t, max_calls_per_round, 2'000'000,
          "Call budget of one round (it ends at whichever comes first).");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "Unmeasured load per workload before the sweep.");
ABSL_FLAG(bool, paced, true,
          "After the sweep, run both workloads open-loop at "
          "--paced_fraction of GetToken's peak throughput.");
ABSL_FLAG(double, paced_fraction, 0.5, "Fraction of the peak to pace at.");
ABSL_FLAG(int, paced_max_outstanding, 2048,
          "Open loop: calls due while this many are outstanding are counted "
          "as skipped instead of started.");
ABSL_FLAG(absl::Duration, call_timeout, absl::Seconds(5), "Per-call deadline.");
ABSL_FLAG(absl::Duration, time_limit, absl::Minutes(20),
          "The run stops (exit 1) if it has not finished by then.");
ABSL_FLAG(int, server_pid, 0,
          "The server's process id, to report its CPU time per call.");
ABSL_FLAG(std::string, json_out, "", "Write the results as JSON here.");
ABSL_FLAG(std::string, only, "",
          "Run only this workload's rounds (GetToken, Check or Noop), e.g. "
          "to count its context switches with perf stat.");
ABSL_FLAG(bool, print_rounds, false,
          "Print every round's throughput and p50 to stderr as it ends.");
ABSL_FLAG(std::string, csv_out, "",
          "Write per-level latency percentiles as CSV here (for plotting).");

namespace treezor::broker::bench {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using SteadyClock = std::chrono::steady_clock;

enum class Workload { kGetToken, kCheck, kNoop };
constexpr size_t kWorkloads = 3;

const char* Name(Workload w) {
  switch (w) {
    case Workload::kGetToken:
      return "GetToken";
    case Workload::kCheck:
      return "Check";
    case Workload::kNoop:
      return "Noop";
  }
  return "?";
}

absl::Duration Since(SteadyClock::time_point start) {
  return absl::FromChrono(SteadyClock::now() - start);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "load_generator: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The server under test. Every workload sends the same kind of call: its
// request serialized once, sent as bytes through a method registered on each
// connection (as a generated stub's are), and its answer kept as bytes. So
// the load generator does the same work per call whatever the workload, apart
// from the bytes it receives: parsing a GetTokenResponse (a token, scopes, a
// timestamp: allocations) per call cost it ~10 µs more than a Check did, on
// the same two cores as the server (tests/bench/README.md). Every answer's
// status and size are checked; one in kSampleEvery is parsed and checked.
class Target {
 public:
  using Done = std::function<void(bool ok)>;

  Target(int channels, const v1::GetTokenRequest& get_token_request) {
    std::string& check = request_bytes_[Index(Workload::kCheck)];
    get_token_request.SerializeToString(
        &request_bytes_[Index(Workload::kGetToken)]);
    HealthCheckRequest().SerializeToString(&check);
    request_bytes_[Index(Workload::kNoop)] = check;
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFile(absl::GetFlag(FLAGS_ca));
    ssl.pem_cert_chain = ReadFile(absl::GetFlag(FLAGS_cert));
    ssl.pem_private_key = ReadFile(absl::GetFlag(FLAGS_key));
    auto credentials = grpc::SslCredentials(ssl);
    const std::string noop_target = absl::GetFlag(FLAGS_noop_target);
    for (int i = 0; i < channels; ++i) {
      grpc::ChannelArguments args;
      // Its own connection: no subchannel sharing between the channels.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("tzb.bench.channel", i);
      const std::string name = absl::GetFlag(FLAGS_ssl_target_name_override);
      if (!name.empty()) args.SetSslTargetNameOverride(name);
      auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                               credentials, args);
      Connection c;
      c.routes[Index(Workload::kGetToken)] = Route(channel, kGetTokenMethod);
      c.routes[Index(Workload::kCheck)] = Route(channel, kCheckMethod);
      if (!noop_target.empty()) {
        c.routes[Index(Workload::kNoop)] = Route(
            grpc::CreateCustomChannel(noop_target, credentials, args),
            kCheckMethod);
      }
      connections_.push_back(std::move(c));
    }
  }

  bool has_noop() const {
    return connections_.front().routes[Index(Workload::kNoop)].channel !=
           nullptr;
  }

  int channels() const { return static_cast<int>(connections_.size()); }

  bool WaitConnected(absl::Duration timeout) {
    const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
    for (const Connection& c : connections_) {
      for (const Route& r : c.routes) {
        if (r.channel != nullptr && !r.channel->WaitForConnected(deadline)) {
          return false;
        }
      }
    }
    return true;
  }

  // Starts one call on connection `channel`; `done` runs on a gRPC thread.
  void Start(Workload workload, int channel, Done done) {
    auto* call = new Call;
    call->done = std::move(done);
    StartCall(workload, channel, call, [call, workload](grpc::Status status) {
      const bool ok = status.ok() && call->response.Length() > 0 &&
                      (++sampled % kSampleEvery != 0 ||
                       Valid(workload, call->response));
      Done done = std::move(call->done);
      delete call;
      done(ok);
    });
  }

  // One blocking call whose answer is parsed and checked, for the start-up
  // sanity check.
  grpc::Status CallOnce(Workload workload) {
    struct State {
      Mutex mu;
      CondVar cv;
      bool done ABSL_GUARDED_BY(mu) = false;
      grpc::Status status ABSL_GUARDED_BY(mu);
    } state;
    Call call;
    StartCall(workload, 0, &call, [&](grpc::Status status) {
      if (status.ok() && !Valid(workload, call.response)) {
        status = grpc::Status(grpc::StatusCode::UNKNOWN,
                              "the answer is not a valid one");
      }
      MutexLock lock(&state.mu);
      state.status = status;
      state.done = true;
      state.cv.SignalAll();
    });
    MutexLock lock(&state.mu);
    while (!state.done) state.cv.Wait(&state.mu);
    return state.status;
  }

 private:
  using Method = grpc::internal::RpcMethod;
  static constexpr char kGetTokenMethod[] =
      "/treezor.broker.v1.TokenService/GetToken";
  static constexpr char kCheckMethod[] = "/grpc.health.v1.Health/Check";
  static constexpr uint64_t kSampleEvery = 256;
  // Counts a gRPC thread's answers, to pick the ones parsed.
  static thread_local uint64_t sampled;

  // Where one workload's calls go: a method registered on its channel (the
  // broker's, or the bare server's for Noop; none without --noop_target).
  struct Route {
    Route() = default;
    Route(std::shared_ptr<grpc::Channel> c, const char* name)
        : channel(std::move(c)),
          method(std::make_unique<Method>(name, Method::NORMAL_RPC, channel)) {}
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<Method> method;
  };
  struct Connection {
    std::array<Route, kWorkloads> routes;  // by Index(workload)
  };

  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer response;
    Done done;
  };

  static size_t Index(Workload w) { return static_cast<size_t>(w); }

  // Whether `bytes` are the answer `workload` expects: a token, or SERVING.
  static bool Valid(Workload workload, const grpc::ByteBuffer& bytes) {
    grpc::Slice slice;
    if (!bytes.DumpToSingleSlice(&slice).ok()) return false;
    const void* data = slice.begin();
    const int size = static_cast<int>(slice.size());
    if (workload == Workload::kGetToken) {
      v1::GetTokenResponse response;
      return response.ParseFromArray(data, size) &&
             !response.access_token().empty();
    }
    HealthCheckResponse response;
    return response.ParseFromArray(data, size) &&
           response.status() == HealthCheckResponse::SERVING;
  }

  void StartCall(Workload workload, int channel, Call* call,
                 std::function<void(grpc::Status)> on_done) {
    call->context.set_deadline(absl::ToChronoTime(
        absl::Now() + absl::GetFlag(FLAGS_call_timeout)));
    const std::string& bytes = request_bytes_[Index(workload)];
    grpc::Slice slice(bytes.data(), bytes.size(), grpc::Slice::STATIC_SLICE);
    grpc::ByteBuffer request(&slice, 1);
    call->request.Swap(&request);
    const Route& route = connections_[channel].routes[Index(workload)];
    grpc::internal::CallbackUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        route.channel.get(), *route.method, &call->context, &call->request,
        &call->response, std::move(on_done));
  }

  std::array<std::string, kWorkloads> request_bytes_;  // serialized once
  std::vector<Connection> connections_;
};

thread_local uint64_t Target::sampled = 0;

// Server CPU seconds so far, or -1 without --server_pid.
double ServerCpuSeconds() {
  const int pid = absl::GetFlag(FLAGS_server_pid);
  if (pid <= 0) return -1;
  absl::StatusOr<ProcessStats> stats = ReadProcessStats(pid);
  return stats.ok() ? stats->cpu_seconds : -1;
}

struct RoundResult {
  LatencyStats stats;
  absl::Duration elapsed;
  double server_cpu_seconds = -1;
};

// `concurrency` sequential call slots, each starting its next call when the
// previous one finishes, until the round's end or call budget.
class ClosedLoop {
 public:
  ClosedLoop(Target* target, Workload workload, int concurrency,
             absl::Duration duration, int64_t max_calls)
      : target_(target),
        workload_(workload),
        end_(SteadyClock::now() + absl::ToChronoNanoseconds(duration)),
        budget_(max_calls),
        slots_(concurrency),
        active_(concurrency) {}

  RoundResult Run() {
    const double cpu_before = ServerCpuSeconds();
    const auto start = SteadyClock::now();
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) Next(i);
    {
      MutexLock lock(&mu_);
      while (active_ > 0) cv_.Wait(&mu_);
    }
    RoundResult result;
    result.elapsed = Since(start);
    const double cpu_after = ServerCpuSeconds();
    if (cpu_before >= 0 && cpu_after >= 0) {
      result.server_cpu_seconds = cpu_after - cpu_before;
    }
    for (const LatencyStats& s : slots_) result.stats.Merge(s);
    return result;
  }

 private:
  void Next(int slot) {
    if (SteadyClock::now() >= end_ ||
        budget_.fetch_sub(1, std::memory_order_relaxed) <= 0) {
      MutexLock lock(&mu_);
      if (--active_ == 0) cv_.SignalAll();
      return;
    }
    const auto started = SteadyClock::now();
    target_->Start(workload_, slot % target_->channels(),
                   [this, slot, started](bool ok) {
                     if (ok) {
                       slots_[slot].Add(Since(started));
                     } else {
                       slots_[slot].AddError();
                     }
                     Next(slot);
                   });
  }

  Target* const target_;
  const Workload workload_;
  const SteadyClock::time_point end_;
  std::atomic<int64_t> budget_;
  // One per slot; a slot's calls are sequential (each starts in the
  // previous one's completion), so no lock.
  std::vector<LatencyStats> slots_;
  Mutex mu_;
  CondVar cv_;
  int active_ ABSL_GUARDED_BY(mu_);
};

struct PacedResult {
  RoundResult from_due;   // latency from when the call was due
  LatencyStats from_sent;  // latency from when it was actually started
  int64_t skipped = 0;
};

// Open loop: call k is due at start + k / rate, whatever happened before.
PacedResult RunOpenLoop(Target* target, Workload workload, double rate,
                        absl::Duration duration) {
  struct Shared {
    Mutex mu;
    CondVar cv;
    int outstanding ABSL_GUARDED_BY(mu) = 0;
    LatencyStats from_due ABSL_GUARDED_BY(mu);
    LatencyStats from_sent ABSL_GUARDED_BY(mu);
  } shared;
  const int max_outstanding = absl::GetFlag(FLAGS_paced_max_outstanding);
  const auto interval = std::chrono::nanoseconds(
      static_cast<int64_t>(1e9 / std::max(rate, 1.0)));
  const auto length = absl::ToChronoNanoseconds(duration);
  PacedResult result;
  const double cpu_before = ServerCpuSeconds();
  const auto start = SteadyClock::now();
  for (int64_t k = 0;; ++k) {
    const auto due = start + k * interval;
    if (due - start >= length) break;
    const auto now = SteadyClock::now();
    if (due > now) std::this_thread::sleep_for(due - now);
    {
      MutexLock lock(&shared.mu);
      if (shared.outstanding >= max_outstanding) {
        ++result.skipped;
        continue;
      }
      ++shared.outstanding;
    }
    const auto sent = SteadyClock::now();
    target->Start(workload, static_cast<int>(k % target->channels()),
                  [&shared, due, sent](bool ok) {
                    const auto done = SteadyClock::now();
                    MutexLock lock(&shared.mu);
                    if (ok) {
                      shared.from_due.Add(absl::FromChrono(done - due));
                      shared.from_sent.Add(absl::FromChrono(done - sent));
                    } else {
                      shared.from_due.AddError();
                      shared.from_sent.AddError();
                    }
                    if (--shared.outstanding == 0) shared.cv.SignalAll();
                  });
  }
  MutexLock lock(&shared.mu);
  while (shared.outstanding > 0) shared.cv.Wait(&shared.mu);
  result.from_due.elapsed = Since(start);
  const double cpu_after = ServerCpuSeconds();
  if (cpu_before >= 0 && cpu_after >= 0) {
    result.from_due.server_cpu_seconds = cpu_after - cpu_before;
  }
  result.from_due.stats = std::move(shared.from_due);
  result.from_sent = std::move(shared.from_sent);
  return result;
}

// Rounds of one workload, added up.
struct Aggregate {
  LatencyStats stats;
  absl::Duration elapsed;
  double server_cpu_seconds = 0;
  bool cpu_known = true;

  void Add(RoundResult round) {
    stats.Merge(round.stats);
    elapsed += round.elapsed;
    if (round.server_cpu_seconds < 0) cpu_known = false;
    server_cpu_seconds += round.server_cpu_seconds;
  }
  LatencySummary Summary() const { return stats.Summarize(elapsed); }
  // Server CPU microseconds per successful call, or -1 if unknown.
  double CpuUsPerCall() const {
    if (!cpu_known || stats.count() == 0) return -1;
    return server_cpu_seconds * 1e6 / static_cast<double>(stats.count());
  }
};

struct Level {
  int concurrency = 0;
  Aggregate get_token;
  Aggregate check;
  Aggregate noop;  // empty without --noop_target

  Aggregate& Of(Workload w) {
    return w == Workload::kGetToken ? get_token
           : w == Workload::kCheck  ? check
                                    : noop;
  }
};

double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

std::string Fmt(double v) { return absl::StrFormat("%.1f", v); }

void PrintRow(const std::string& label, Workload w, const LatencySummary& s,
              double cpu_us) {
  std::printf("%-12s %-9s %10.0f %8.0f %8.0f %8.0f %9.0f %7lld %9s\n",
              label.c_str(), Name(w), s.throughput, s.p50_us, s.p90_us,
              s.p99_us, s.p999_us, static_cast<long long>(s.errors),
              cpu_us < 0 ? "-" : Fmt(cpu_us).c_str());
}

int Run() {
  const absl::Time run_deadline = absl::Now() + absl::GetFlag(FLAGS_time_limit);
  if (absl::GetFlag(FLAGS_target).empty()) {
    std::fprintf(stderr, "load_generator: --target is required\n");
    return 2;
  }
  std::vector<int> levels;
  for (const std::string& s : absl::GetFlag(FLAGS_concurrency)) {
    int c = 0;
    if (!absl::SimpleAtoi(s, &c) || c < 1) {
      std::fprintf(stderr, "load_generator: bad --concurrency %s\n", s.c_str());
      return 2;
    }
    levels.push_back(c);
  }
  v1::GetTokenRequest request;
  request.set_tenant(absl::GetFlag(FLAGS_tenant));
  for (const std::string& s : absl::GetFlag(FLAGS_scopes)) request.add_scopes(s);

  Target target(std::max(1, absl::GetFlag(FLAGS_channels)), request);
  if (!target.WaitConnected(absl::Seconds(10))) {
    std::fprintf(stderr, "load_generator: cannot connect to %s\n",
                 absl::GetFlag(FLAGS_target).c_str());
    return 1;
  }
  std::vector<Workload> workloads = {Workload::kGetToken, Workload::kCheck};
  if (target.has_noop()) workloads.push_back(Workload::kNoop);
  for (Workload w : workloads) {
    grpc::Status status = target.CallOnce(w);
    if (!status.ok()) {
      std::fprintf(stderr, "load_generator: %s failed: %d %s\n", Name(w),
                   status.error_code(), status.error_message().c_str());
      return 1;
    }
  }

  const absl::Duration round = absl::GetFlag(FLAGS_round_duration);
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  const int64_t budget = absl::GetFlag(FLAGS_max_calls_per_round);
  const int max_level = *std::max_element(levels.begin(), levels.end());
  for (Workload w : workloads) {
    ClosedLoop(&target, w, max_level, absl::GetFlag(FLAGS_warmup), budget).Run();
  }

  auto out_of_time = [&] {
    if (absl::Now() < run_deadline) return false;
    std::fprintf(stderr, "load_generator: --time_limit reached; stopping\n");
    return true;
  };

  std::vector<Level> results;
  for (int c : levels) {
    Level level;
    level.concurrency = c;
    for (int r = 0; r < rounds; ++r) {
      if (out_of_time()) return 1;
      // Rotate which workload goes first.
      for (size_t k = 0; k < workloads.size(); ++k) {
        const Workload w = workloads[(r + k) % workloads.size()];
        const std::string only = absl::GetFlag(FLAGS_only);
        if (!only.empty() && only != Name(w)) continue;
        RoundResult result = ClosedLoop(&target, w, c, round, budget).Run();
        if (absl::GetFlag(FLAGS_print_rounds)) {
          const LatencySummary s = result.stats.Summarize(result.elapsed);
          std::fprintf(stderr, "round %d in flight %d %-8s %9.0f/s p50 %6.0f us\n",
                       r, c, Name(w), s.throughput, s.p50_us);
        }
        level.Of(w).Add(std::move(result));
      }
    }
    results.push_back(std::move(level));
  }

  // Peaks (each workload's best level) and the level where GetToken peaks.
  size_t get_peak = 0;
  size_t check_peak = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].get_token.Summary().throughput >
        results[get_peak].get_token.Summary().throughput) {
      get_peak = i;
    }
    if (results[i].check.Summary().throughput >
        results[check_peak].check.Summary().throughput) {
      check_peak = i;
    }
  }
  const LatencySummary get_at_peak = results[get_peak].get_token.Summary();
  const LatencySummary check_at_get_peak = results[get_peak].check.Summary();
  const double peak_get = get_at_peak.throughput;
  const double peak_check = results[check_peak].check.Summary().throughput;

  std::printf("\nload_generator: %s, tenant %s, %d connections, %d x %s "
              "per workload per level (alternating)\n\n",
              absl::GetFlag(FLAGS_target).c_str(),
              absl::GetFlag(FLAGS_tenant).c_str(), target.channels(), rounds,
              absl::FormatDuration(round).c_str());
  std::printf("%-12s %-9s %10s %8s %8s %8s %9s %7s %9s\n", "in flight",
              "workload", "calls/s", "p50 us", "p90 us", "p99 us", "p99.9 us",
              "errors", "srv us/c");
  for (const Level& level : results) {
    const std::string label = absl::StrCat(level.concurrency);
    PrintRow(label, Workload::kGetToken, level.get_token.Summary(),
             level.get_token.CpuUsPerCall());
    PrintRow(label, Workload::kCheck, level.check.Summary(),
             level.check.CpuUsPerCall());
    if (target.has_noop()) {
      PrintRow(label, Workload::kNoop, level.noop.Summary(), -1);
    }
    std::printf("%-12s %-9s %10.3f  p50 ratio %6.3f  p99 ratio %6.3f\n", "",
                "G/C",
                Ratio(level.get_token.Summary().throughput,
                      level.check.Summary().throughput),
                Ratio(level.get_token.Summary().p50_us,
                      level.check.Summary().p50_us),
                Ratio(level.get_token.Summary().p99_us,
                      level.check.Summary().p99_us));
    if (target.has_noop()) {
      std::printf("%-12s %-9s %10.3f  p50 ratio %6.3f\n", "", "C/bare",
                  Ratio(level.check.Summary().throughput,
                        level.noop.Summary().throughput),
                  Ratio(level.check.Summary().p50_us,
                        level.noop.Summary().p50_us));
    }
  }
  std::printf(
      "\npeak throughput: GetToken %.0f/s (at %d in flight), Check %.0f/s "
      "(at %d); ratio GetToken/Check %.3f\n",
      peak_get, results[get_peak].concurrency, peak_check,
      results[check_peak].concurrency, Ratio(peak_get, peak_check));
  std::printf("p99 at GetToken's peak level: GetToken %.0f us, Check %.0f us; "
              "ratio %.3f\n",
              get_at_peak.p99_us, check_at_get_peak.p99_us,
              Ratio(get_at_peak.p99_us, check_at_get_peak.p99_us));

  // Open loop at a fraction of GetToken's peak.
  bool paced_done = false;
  Aggregate paced_get, paced_check;
  LatencyStats paced_get_sent, paced_check_sent;
  int64_t paced_skipped = 0;
  const double paced_rate = peak_get * absl::GetFlag(FLAGS_paced_fraction);
  if (absl::GetFlag(FLAGS_paced) && paced_rate >= 1) {
    for (int r = 0; r < rounds; ++r) {
      if (out_of_time()) return 1;
      const Workload first = r % 2 == 0 ? Workload::kGetToken : Workload::kCheck;
      const Workload second =
          first == Workload::kGetToken ? Workload::kCheck : Workload::kGetToken;
      for (Workload w : {first, second}) {
        PacedResult pr = RunOpenLoop(&target, w, paced_rate, round);
        paced_skipped += pr.skipped;
        if (w == Workload::kGetToken) {
          paced_get.Add(std::move(pr.from_due));
          paced_get_sent.Merge(pr.from_sent);
        } else {
          paced_check.Add(std::move(pr.from_due));
          paced_check_sent.Merge(pr.from_sent);
        }
      }
    }
    paced_done = true;
    std::printf("\nopen loop at %.0f calls/s (%.0f%% of GetToken's peak), "
                "latency from when each call was due:\n",
                paced_rate, 100 * absl::GetFlag(FLAGS_paced_fraction));
    PrintRow("paced", Workload::kGetToken, paced_get.Summary(),
             paced_get.CpuUsPerCall());
    PrintRow("paced", Workload::kCheck, paced_check.Summary(),
             paced_check.CpuUsPerCall());
    std::printf("skipped (more than %d outstanding): %lld\n",
                absl::GetFlag(FLAGS_paced_max_outstanding),
                static_cast<long long>(paced_skipped));
  }

  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream out(path);
    out << "{\n  \"target\": \"" << absl::GetFlag(FLAGS_target)
        << "\",\n  \"channels\": " << target.channels()
        << ",\n  \"round_seconds\": " << absl::ToDoubleSeconds(round)
        << ",\n  \"rounds\": " << rounds << ",\n  \"levels\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const Level& l = results[i];
      const LatencySummary g = l.get_token.Summary();
      const LatencySummary c = l.check.Summary();
      std::string noop;
      if (target.has_noop()) {
        const LatencySummary n = l.noop.Summary();
        noop = absl::StrFormat(
            ", \"noop\": %s, \"check_vs_noop_ratio\": %.4f, "
            "\"check_vs_noop_p50_ratio\": %.4f, \"get_token_vs_noop_ratio\": %.4f",
            SummaryJson(n), Ratio(c.throughput, n.throughput),
            Ratio(c.p50_us, n.p50_us), Ratio(g.throughput, n.throughput));
      }
      out << absl::StrFormat(
          "    {\"concurrency\": %d, \"get_token\": %s, \"check\": %s, "
          "\"get_token_server_cpu_us\": %.2f, \"check_server_cpu_us\": %.2f, "
          "\"throughput_ratio\": %.4f, \"p50_ratio\": %.4f, "
          "\"p99_ratio\": %.4f%s}%s\n",
          l.concurrency, SummaryJson(g), SummaryJson(c),
          l.get_token.CpuUsPerCall(), l.check.CpuUsPerCall(),
          Ratio(g.throughput, c.throughput), Ratio(g.p50_us, c.p50_us),
          Ratio(g.p99_us, c.p99_us), noop, i + 1 < results.size() ? "," : "");
    }
    out << "  ],\n";
    out << absl::StrFormat(
        "  \"peak\": {\"get_token_throughput\": %.1f, "
        "\"get_token_concurrency\": %d, \"check_throughput\": %.1f, "
        "\"check_concurrency\": %d, \"throughput_ratio\": %.4f, "
        "\"get_token_p99_us\": %.1f, \"check_p99_us\": %.1f, "
        "\"p99_ratio\": %.4f}",
        peak_get, results[get_peak].concurrency, peak_check,
        results[check_peak].concurrency, Ratio(peak_get, peak_check),
        get_at_peak.p99_us, check_at_get_peak.p99_us,
        Ratio(get_at_peak.p99_us, check_at_get_peak.p99_us));
    if (paced_done) {
      out << absl::StrFormat(
          ",\n  \"paced\": {\"fraction\": %.3f, \"rate\": %.1f, "
          "\"skipped\": %d,\n    \"get_token\": %s,\n    \"check\": %s,\n"
          "    \"get_token_from_sent\": %s,\n    \"check_from_sent\": %s,\n"
          "    \"get_token_server_cpu_us\": %.2f, "
          "\"check_server_cpu_us\": %.2f}",
          absl::GetFlag(FLAGS_paced_fraction), paced_rate, paced_skipped,
          SummaryJson(paced_get.Summary()), SummaryJson(paced_check.Summary()),
          SummaryJson(paced_get_sent.Summarize(paced_get.elapsed)),
          SummaryJson(paced_check_sent.Summarize(paced_check.elapsed)),
          paced_get.CpuUsPerCall(), paced_check.CpuUsPerCall());
    }
    out << "\n}\n";
    if (!out) {
      std::fprintf(stderr, "load_generator: cannot write %s\n", path.c_str());
      return 1;
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_csv_out); !path.empty()) {
    std::ofstream out(path);
    out << "concurrency,workload,throughput,p50_us,p90_us,p99_us,p999_us,"
           "errors\n";
    for (Level& l : results) {
      for (Workload w : workloads) {
        const LatencySummary s = l.Of(w).Summary();
        out << absl::StrFormat("%d,%s,%.1f,%.1f,%.1f,%.1f,%.1f,%d\n",
                               l.concurrency, Name(w), s.throughput, s.p50_us,
                               s.p90_us, s.p99_us, s.p999_us, s.errors);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace treezor::broker::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load generator: cached GetToken vs grpc.health.v1.Health/Check on the "
      "same broker (see the comment at the top of load_generator.cc).");
  absl::ParseCommandLine(argc, argv);
  return treezor::broker::bench::Run();
}
