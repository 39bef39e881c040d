// hostile_load_benchmark: a legitimate caller's cached GetToken while, in
// turn, hostile peers flood the real broker binary (issue 11, item 5).
//
//   hostile_load_benchmark --phase=10s --json_out=hostile.json
//       --csv_out=hostile.csv --txt_out=hostile.txt
//
// The broker runs as its own process with the limits at their defaults
// (docs/CONFIG.md "Limits"), one tenant, against the in-process Treezor
// double. Each flood runs in two halves, side by side in the same run:
//   baseline  the legitimate caller alone for --phase;
//   attack    the flood is opened first, then the same caller for --phase
//             while the flood is held; then the flood is released.
// The floods, each from the peer the issue names:
//   tls_half_hello  --connections TCP connections that send half a TLS
//                   ClientHello and nothing more (no certificate needed);
//   tcp_idle        --connections TCP connections that send nothing;
//                   both from --attacker_peers addresses (127.0.0.2 on),
//                   while the legitimate caller is 127.0.0.1;
//   watch_streams   --watch_streams WatchToken streams from one authorized
//                   caller, over --watch_channels connections;
//   health_watch    --health_streams grpc.health.v1 Watch streams on the
//                   unauthenticated plaintext health port;
//   scope_sets      --scope_sets distinct scope sets from one authorized
//                   caller (64 calls in flight).
// What it reports per flood: the legitimate caller's calls, failures, p50 and
// p99 without and with the flood, and their ratio; the broker's peak RSS
// while the flood was held (sampled VmRSS every 20 ms, plus VmHWM over the
// whole run) against --memory_limit_mib (the Helm chart's limit); how the
// broker answered the flood (connections it closed, stream and call status
// codes) and the Treezor requests it caused.
// Targets (report.py and the exit status): no failed legitimate call, p99
// under attack <= 2 x without, peak RSS below the memory limit. Exit status
// 1 when one is missed (--enforce, the default) or the run breaks.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tests/bench/broker_process.h"
#include "tests/bench/latency_stats.h"
#include "tests/bench/process_stats.h"
#include "tests/testing/cert_factory.h"
#include "tests/testing/fake_treezor.h"
#include "tests/testing/temp_dir.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

ABSL_FLAG(std::string, broker_binary, TZB_BROKER_BINARY,
          "The treezor-token-broker executable.");
ABSL_FLAG(absl::Duration, phase, absl::Seconds(10),
          "How long the legitimate caller runs in each half of a flood.");
ABSL_FLAG(int, connections, 5000,
          "TCP connections of the tls_half_hello and tcp_idle floods.");
ABSL_FLAG(int, attacker_peers, 1,
          "Source addresses the TCP floods come from (127.0.0.2 onwards; the "
          "legitimate caller is 127.0.0.1): 1 is one hostile pod, more a "
          "distributed flood, which the per-peer cap cannot tell apart.");
ABSL_FLAG(int, watch_streams, 20000, "WatchToken streams of that flood.");
ABSL_FLAG(int, watch_channels, 200,
          "Connections the WatchToken streams are spread over.");
ABSL_FLAG(int, health_streams, 20000,
          "Health.Watch streams on the plaintext health port.");
ABSL_FLAG(int, scope_sets, 5000, "Distinct scope sets of that flood.");
ABSL_FLAG(std::string, floods,
          "tls_half_hello,tcp_idle,watch_streams,health_watch,scope_sets",
          "Which floods to run, in this order.");
ABSL_FLAG(int, memory_limit_mib, 256,
          "The container memory limit to stay under (the Helm chart's).");
ABSL_FLAG(double, max_p99_ratio, 2.0,
          "Target: p99 under attack <= this x p99 without.");
ABSL_FLAG(bool, enforce, true, "Exit 1 when a target is missed.");
ABSL_FLAG(std::string, json_out, "", "Write the results as JSON here.");
ABSL_FLAG(std::string, csv_out, "", "Write one row per flood as CSV here.");
ABSL_FLAG(std::string, txt_out, "", "Write the table as text here too.");
ABSL_FLAG(std::string, broker_log, "",
          "Keep the broker's log here (default: discarded with the temp dir).");

namespace treezor::broker::bench {
namespace {

using testing::CertFactory;
using testing::CertPaths;
using testing::FakeTreezor;
using testing::ReceivedRequest;
using testing::TempDir;
using v1::GetTokenRequest;
using v1::GetTokenResponse;
using v1::TokenService;
using v1::WatchTokenRequest;

constexpr char kSecretEnv[] = "TZB_BENCH_CLIENT_SECRET";
constexpr char kSecret[] = "hostile-benchmark-secret";
constexpr char kTenant[] = "acme";
constexpr char kLegit[] = "spiffe://corp/legit";
constexpr char kAttacker[] = "spiffe://corp/attacker";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Outcomes of a flood by name ("closed_by_broker", "RESOURCE_EXHAUSTED"...).
class Outcomes {
 public:
  void Add(const std::string& what, int64_t n = 1) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    counts_[what] += n;
  }
  std::map<std::string, int64_t> counts() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return counts_;
  }

 private:
  mutable Mutex mu_;
  std::map<std::string, int64_t> counts_ ABSL_GUARDED_BY(mu_);
};

// "RESOURCE_EXHAUSTED", ...: gRPC's codes are absl's, value for value.
std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// Counts down to zero; Wait blocks until then.
class Latch {
 public:
  explicit Latch(int64_t n) : n_(n) {}
  void CountDown() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (--n_ == 0) cv_.SignalAll();
  }
  bool WaitFor(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                         [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return n_ <= 0;
                         });
  }

 private:
  Mutex mu_;
  CondVar cv_;
  int64_t n_ ABSL_GUARDED_BY(mu_);
};

// A peer's mTLS channel material.
struct Tls {
  std::string ca, cert, key;
};

std::shared_ptr<grpc::Channel> MtlsChannel(const Tls& tls, int port,
                                           int channel_id) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tls.ca;
  ssl.pem_cert_chain = tls.cert;
  ssl.pem_private_key = tls.key;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  // A distinct argument per id: its own connection, not a shared subchannel.
  args.SetInt("tzb.bench.channel_id", channel_id);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::SslCredentials(ssl), args);
}

// --- The legitimate caller --------------------------------------------------

// Closed loop, one call in flight, for `duration`, over a connection made
// before the flood (as a running service has).
LatencySummary RunLegitimateCaller(TokenService::Stub* stub,
                                   absl::Duration duration) {
  LatencyStats stats;
  GetTokenRequest request;
  request.set_tenant(kTenant);
  request.add_scopes("admin");
  const absl::Time start = absl::Now();
  while (absl::Now() - start < duration) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    GetTokenResponse response;
    const absl::Time t0 = absl::Now();
    const grpc::Status status = stub->GetToken(&context, request, &response);
    if (status.ok() && !response.access_token().empty()) {
      stats.Add(absl::Now() - t0);
    } else {
      stats.AddError();
      std::fprintf(stderr, "legitimate call failed: %s %s\n",
                   CodeName(status.error_code()).c_str(),
                   status.error_message().c_str());
    }
  }
  return stats.Summarize(absl::Now() - start);
}

// A connection opened during the flood: can a caller that starts now get in?
bool FreshCallerGetsAToken(const Tls& tls, int port, int channel_id) {
  auto stub = TokenService::NewStub(MtlsChannel(tls, port, channel_id));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  GetTokenRequest request;
  request.set_tenant(kTenant);
  request.add_scopes("admin");
  GetTokenResponse response;
  return stub->GetToken(&context, request, &response).ok();
}

// --- Floods -----------------------------------------------------------------

// A flood holds its resources from Open() to Close().
class Flood {
 public:
  virtual ~Flood() = default;
  virtual void Open() = 0;
  virtual void Close() = 0;
  const Outcomes& outcomes() const { return outcomes_; }

 protected:
  Outcomes outcomes_;
};

// The first bytes of a TLS 1.2+ ClientHello record announcing 512 bytes of
// handshake, of which only these few arrive.
constexpr unsigned char kHalfClientHello[] = {
    0x16, 0x03, 0x01, 0x02, 0x00,  // record: handshake, TLS 1.0, 512 bytes
    0x01, 0x00, 0x01, 0xfc,        // ClientHello, 508 bytes
    0x03, 0x03,                    // client_version TLS 1.2
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};  // part of random

class TcpFlood : public Flood {
 public:
  TcpFlood(int port, int count, bool half_hello, int peers)
      : port_(port), count_(count), half_hello_(half_hello),
        peers_(std::max(1, std::min(peers, 250))) {}
  ~TcpFlood() override { Close(); }

  void Open() override {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < count_; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        outcomes_.Add(absl::StrCat("socket_failed_errno_", errno));
        break;  // out of descriptors: the flood is as big as it gets
      }
      sockaddr_in from{};
      from.sin_family = AF_INET;
      from.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + i % peers_);
      if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
          connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        outcomes_.Add(absl::StrCat("connect_failed_errno_", errno));
        close(fd);
        continue;
      }
      if (half_hello_ &&
          send(fd, kHalfClientHello, sizeof(kHalfClientHello), MSG_NOSIGNAL) !=
              static_cast<ssize_t>(sizeof(kHalfClientHello))) {
        outcomes_.Add("send_failed");
      }
      fds_.push_back(fd);
    }
    outcomes_.Add("opened", static_cast<int64_t>(fds_.size()));
  }

  // Counts the connections the broker has closed by now, then closes all.
  void Close() override {
    if (fds_.empty()) return;
    int64_t closed = 0;
    for (int fd : fds_) {
      pollfd p{fd, POLLIN | POLLRDHUP, 0};
      char byte;
      if (poll(&p, 1, 0) == 1 &&
          ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0 ||
           recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)) {
        ++closed;
      }
      close(fd);
    }
    outcomes_.Add("closed_by_broker", closed);
    outcomes_.Add("still_open_at_end",
                  static_cast<int64_t>(fds_.size()) - closed);
    fds_.clear();
  }

 private:
  const int port_;
  const int count_;
  const bool half_hello_;
  const int peers_;
  std::vector<int> fds_;
};

// Server-streaming calls held open by callback reactors; `start` begins one
// call on a reactor (with its request, which lives as long as the reactor).
// Close() cancels those still open and waits for all.
template <typename Request, typename Response>
class StreamFlood : public Flood {
 public:
  class Reader : public grpc::ClientReadReactor<Response> {
   public:
    Reader(StreamFlood* flood) : flood_(flood) {}
    grpc::ClientContext* context() { return &context_; }
    Request* request() { return &request_; }
    void Begin() {
      this->StartRead(&response_);
      this->StartCall();
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;
      if (!received_) {
        received_ = true;
        flood_->outcomes_.Add("received_a_message");
        flood_->received_.CountDown();
      }
      this->StartRead(&response_);
    }
    void OnDone(const grpc::Status& status) override {
      flood_->outcomes_.Add(CodeName(status.error_code()));
      if (!received_) flood_->received_.CountDown();
      flood_->done_.CountDown();
    }

   private:
    StreamFlood* const flood_;
    grpc::ClientContext context_;
    Request request_;
    Response response_;
    bool received_ = false;
  };

  using Start = std::function<void(int index, Reader* reader)>;

  StreamFlood(int count, Start start)
      : count_(count), start_(std::move(start)), received_(count),
        done_(count) {}
  ~StreamFlood() override { Close(); }

  // Starts every stream; returns once each has received its first message
  // or ended, or after 20 s (streams queued behind a per-connection cap
  // neither receive nor end).
  void Open() override {
    readers_.reserve(count_);
    for (int i = 0; i < count_; ++i) {
      readers_.push_back(std::make_unique<Reader>(this));
      start_(i, readers_.back().get());
    }
    received_.WaitFor(absl::Seconds(20));
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    for (auto& r : readers_) r->context()->TryCancel();
    if (!done_.WaitFor(absl::Seconds(60))) {
      std::fprintf(stderr, "streams did not end within 60 s of cancel\n");
      std::abort();  // the readers are still in use: cannot free them
    }
  }

 private:
  const int count_;
  const Start start_;
  Latch received_;
  Latch done_;
  std::vector<std::unique_ptr<Reader>> readers_;
  bool closed_ = false;
};

// Distinct scope sets from one caller, 64 in flight.
class ScopeSetFlood : public Flood {
 public:
  ScopeSetFlood(TokenService::Stub* stub, int count)
      : stub_(stub), count_(count) {}

  void Open() override {
    constexpr int kInFlight = 64;
    Mutex mu;
    CondVar cv;
    int in_flight = 0;
    Latch done(count_);
    for (int i = 0; i < count_; ++i) {
      {
        MutexLock lock(&mu);
        cv.WaitUntil(&mu, absl::InfiniteFuture(),
                     [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
                       return in_flight < kInFlight;
                     });
        ++in_flight;
      }
      struct Call {
        grpc::ClientContext context;
        GetTokenRequest request;
        GetTokenResponse response;
      };
      auto* call = new Call;
      call->context.set_deadline(
          absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      call->request.set_tenant(kTenant);
      call->request.add_scopes(absl::StrCat("flood-", i));
      stub_->async()->GetToken(
          &call->context, &call->request, &call->response,
          [this, call, &mu, &cv, &in_flight, &done](grpc::Status status) {
            outcomes_.Add(CodeName(status.error_code()));
            delete call;
            {
              MutexLock lock(&mu);
              --in_flight;
              cv.SignalAll();
            }
            done.CountDown();
          });
    }
    done.WaitFor(absl::InfiniteDuration());
  }
  void Close() override {}

 private:
  TokenService::Stub* const stub_;
  const int count_;
};

// --- Measurement ------------------------------------------------------------

// Samples the broker's VmRSS every 20 ms on its own thread while alive.
class RssSampler {
 public:
  explicit RssSampler(pid_t pid) : pid_(pid), thread_([this] { Loop(); }) {}
  ~RssSampler() {
    stop_ = true;
    thread_.join();
  }
  // The highest VmRSS sampled since the last call (kB), and resets it.
  int64_t TakePeakKb() { return peak_kb_.exchange(0); }

 private:
  void Loop() {
    while (!stop_) {
      absl::StatusOr<ProcessStats> s = ReadProcessStats(pid_);
      if (s.ok()) {
        int64_t seen = peak_kb_.load();
        while (s->rss_kb > seen && !peak_kb_.compare_exchange_weak(seen, s->rss_kb)) {
        }
      }
      absl::SleepFor(absl::Milliseconds(20));  // a sampling period, not a wait
    }
  }

  const pid_t pid_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> peak_kb_{0};
  std::thread thread_;
};

struct FloodResult {
  std::string name;
  LatencySummary baseline;
  LatencySummary attack;
  int64_t baseline_rss_kb = 0;
  int64_t attack_rss_kb = 0;
  int64_t treezor_requests = 0;
  bool fresh_caller_ok = false;
  std::map<std::string, int64_t> outcomes;
  double open_seconds = 0;
};

std::string OutcomesText(const std::map<std::string, int64_t>& outcomes) {
  std::vector<std::string> parts;
  for (const auto& [what, n] : outcomes) parts.push_back(absl::StrCat(what, "=", n));
  return absl::StrJoin(parts, " ");
}

std::string OutcomesJson(const std::map<std::string, int64_t>& outcomes) {
  std::vector<std::string> parts;
  for (const auto& [what, n] : outcomes) {
    parts.push_back(absl::StrFormat("\"%s\":%d", what, n));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Run() {
  RaiseFileLimit();  // for the floods; the broker inherits it too
  TempDir dir;
  auto internal_ca = CertFactory::Create(dir.path(), "Internal CA");
  auto treezor_ca = CertFactory::Create(dir.path(), "Treezor CA");
  if (!internal_ca.ok() || !treezor_ca.ok()) {
    std::fprintf(stderr, "hostile_load_benchmark: cannot make certificates\n");
    return 1;
  }
  auto server = internal_ca->Issue("broker", CertFactory::ServerLeaf("broker"));
  auto legit = internal_ca->Issue(
      "legit", {.common_name = "legit", .uri_sans = {kLegit}});
  auto attacker = internal_ca->Issue(
      "attacker", {.common_name = "attacker", .uri_sans = {kAttacker}});
  auto treezor_server =
      treezor_ca->Issue("treezor", CertFactory::ServerLeaf("treezor"));
  auto upstream = treezor_ca->Issue("broker-to-treezor", {.common_name = "broker"});
  if (!server.ok() || !legit.ok() || !attacker.ok() || !treezor_server.ok() ||
      !upstream.ok()) {
    std::fprintf(stderr, "hostile_load_benchmark: cannot issue certificates\n");
    return 1;
  }

  std::atomic<int64_t> treezor_requests{0};
  FakeTreezor::Options t;
  t.cert_file = treezor_server->cert_file;
  t.key_file = treezor_server->key_file;
  t.client_ca_file = treezor_ca->ca_cert_file();
  t.client_secret = kSecret;
  t.on_answered = [&treezor_requests](const ReceivedRequest&) {
    ++treezor_requests;
  };
  auto treezor = FakeTreezor::Start(t);
  if (!treezor.ok()) {
    std::fprintf(stderr, "hostile_load_benchmark: cannot start the double: %s\n",
                 treezor.status().ToString().c_str());
    return 1;
  }

  const std::string config = absl::StrFormat(
      R"({
  "listenAddress": "127.0.0.1:0",
  "healthListenAddress": "127.0.0.1:0",
  "serverTls": {"certFile": "%s", "keyFile": "%s", "clientCaFile": "%s"},
  "tenants": [{"name": "%s", "baseUrl": "%s", "clientId": "1234",
    "clientSecretEnv": "%s", "defaultScopes": ["admin"],
    "upstreamTls": {"caFile": "%s", "certFile": "%s", "keyFile": "%s"}}],
  "callers": [{"identity": "%s", "tenants": ["%s"]},
              {"identity": "%s", "tenants": ["%s"]}]
}
)",
      server->cert_file, server->key_file, internal_ca->ca_cert_file(), kTenant,
      (*treezor)->base_url(), kSecretEnv, treezor_ca->ca_cert_file(),
      upstream->cert_file, upstream->key_file, kLegit, kTenant, kAttacker,
      kTenant);
  const std::string config_path = dir.path() + "/broker.json";
  std::ofstream(config_path) << config;
  std::string log_path = absl::GetFlag(FLAGS_broker_log);
  if (log_path.empty()) log_path = dir.path() + "/broker.log";

  auto pid = SpawnBroker(absl::GetFlag(FLAGS_broker_binary), config_path,
                         log_path, {absl::StrCat(kSecretEnv, "=", kSecret)});
  if (!pid.ok()) {
    std::fprintf(stderr, "%s\n", pid.status().ToString().c_str());
    return 1;
  }
  auto port_text =
      WaitForLogField(log_path, "broker started", "port", absl::Seconds(60));
  auto health_text = WaitForLogField(log_path, "broker started", "health_port",
                                     absl::Seconds(1));
  int port = 0, health_port = 0;
  if (!port_text.ok() || !health_text.ok() ||
      !absl::SimpleAtoi(*port_text, &port) ||
      !absl::SimpleAtoi(*health_text, &health_port)) {
    std::fprintf(stderr, "hostile_load_benchmark: the broker did not start: %s\n%s",
                 port_text.status().ToString().c_str(), ReadFile(log_path).c_str());
    StopProcess(*pid, absl::Seconds(5));
    return 1;
  }

  const std::string ca = ReadFile(internal_ca->ca_cert_file());
  const Tls legit_tls{ca, ReadFile(legit->cert_file), ReadFile(legit->key_file)};
  const Tls attacker_tls{ca, ReadFile(attacker->cert_file),
                         ReadFile(attacker->key_file)};
  int next_channel_id = 0;
  auto legit_stub = TokenService::NewStub(MtlsChannel(legit_tls, port, ++next_channel_id));
  // Warm the entry and the connection.
  RunLegitimateCaller(legit_stub.get(), absl::Seconds(1));

  const absl::Duration phase = absl::GetFlag(FLAGS_phase);
  const auto health_channel = grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", health_port), grpc::InsecureChannelCredentials());
  auto health_stub = grpc::health::v1::Health::NewStub(health_channel);
  const int watch_channels = std::max(1, absl::GetFlag(FLAGS_watch_channels));
  std::vector<std::unique_ptr<TokenService::Stub>> watch_stubs;
  auto attacker_stub =
      TokenService::NewStub(MtlsChannel(attacker_tls, port, ++next_channel_id));

  std::vector<FloodResult> results;
  RssSampler rss(*pid);
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_floods), ',', absl::SkipEmpty())) {
    std::unique_ptr<Flood> flood;
    if (name == "tls_half_hello" || name == "tcp_idle") {
      flood = std::make_unique<TcpFlood>(port, absl::GetFlag(FLAGS_connections),
                                         name == "tls_half_hello",
                                         absl::GetFlag(FLAGS_attacker_peers));
    } else if (name == "watch_streams") {
      watch_stubs.clear();
      for (int c = 0; c < watch_channels; ++c) {
        watch_stubs.push_back(TokenService::NewStub(
            MtlsChannel(attacker_tls, port, ++next_channel_id)));
      }
      using Watches = StreamFlood<WatchTokenRequest, GetTokenResponse>;
      flood = std::make_unique<Watches>(
          absl::GetFlag(FLAGS_watch_streams),
          [&](int i, Watches::Reader* reader) {
            reader->request()->set_tenant(kTenant);
            reader->request()->add_scopes("admin");
            watch_stubs[i % watch_channels]->async()->WatchToken(
                reader->context(), reader->request(), reader);
            reader->Begin();
          });
    } else if (name == "health_watch") {
      using Watches = StreamFlood<grpc::health::v1::HealthCheckRequest,
                                  grpc::health::v1::HealthCheckResponse>;
      flood = std::make_unique<Watches>(
          absl::GetFlag(FLAGS_health_streams),
          [&](int, Watches::Reader* reader) {
            health_stub->async()->Watch(reader->context(), reader->request(),
                                        reader);
            reader->Begin();
          });
    } else if (name == "scope_sets") {
      flood = std::make_unique<ScopeSetFlood>(attacker_stub.get(),
                                              absl::GetFlag(FLAGS_scope_sets));
    } else {
      std::fprintf(stderr, "unknown flood \"%s\"\n", std::string(name).c_str());
      StopProcess(*pid, absl::Seconds(5));
      return 1;
    }
    FloodResult r;
    r.name = std::string(name);
    std::printf("%s: baseline...\n", r.name.c_str());
    std::fflush(stdout);
    rss.TakePeakKb();
    r.baseline = RunLegitimateCaller(legit_stub.get(), phase);
    r.baseline_rss_kb = rss.TakePeakKb();
    std::printf("%s: opening the flood...\n", r.name.c_str());
    std::fflush(stdout);
    const int64_t requests_before = treezor_requests.load();
    const absl::Time open_start = absl::Now();
    flood->Open();
    r.open_seconds = absl::ToDoubleSeconds(absl::Now() - open_start);
    r.attack = RunLegitimateCaller(legit_stub.get(), phase);
    r.fresh_caller_ok =
        FreshCallerGetsAToken(legit_tls, port, ++next_channel_id);
    flood->Close();
    r.attack_rss_kb = rss.TakePeakKb();
    r.treezor_requests = treezor_requests.load() - requests_before;
    r.outcomes = flood->outcomes().counts();
    results.push_back(std::move(r));
    if (Exited(*pid)) {
      std::fprintf(stderr, "the broker died during %s\n%s", results.back().name.c_str(),
                   ReadFile(log_path).c_str());
      return 1;
    }
  }
  absl::StatusOr<ProcessStats> final_stats = ReadProcessStats(*pid);
  const int64_t hwm_kb = final_stats.ok() ? final_stats->peak_rss_kb : 0;
  const int exit_status = StopProcess(*pid, absl::Seconds(30));

  // Report.
  const int64_t limit_kb = int64_t{absl::GetFlag(FLAGS_memory_limit_mib)} * 1024;
  const double max_ratio = absl::GetFlag(FLAGS_max_p99_ratio);
  bool all_met = true;
  std::string table = absl::StrFormat(
      "%-15s %7s %5s %8s %8s %7s %6s %8s %8s %6s %8s %8s %5s %6s  %s\n",
      "flood", "calls", "fail", "p50 µs", "p99 µs", "calls*", "fail*",
      "p50* µs", "p99* µs",
      "p99x", "RSS MiB", "RSS* MiB", "fresh", "tzreq", "how the broker answered");
  std::string csv =
      "flood,calls,failed,p50_us,p99_us,attack_calls,attack_failed,attack_p50_us,"
      "attack_p99_us,p99_ratio,baseline_rss_mib,attack_rss_mib,treezor_requests\n";
  std::vector<std::string> json_floods;
  for (const FloodResult& r : results) {
    const double ratio = r.baseline.p99_us > 0 ? r.attack.p99_us / r.baseline.p99_us : 0;
    const bool met = r.baseline.errors == 0 && r.attack.errors == 0 &&
                     r.fresh_caller_ok && ratio <= max_ratio &&
                     r.attack_rss_kb < limit_kb;
    all_met = all_met && met;
    absl::StrAppendFormat(
        &table, "%-15s %7d %5d %8.0f %8.0f %7d %6d %8.0f %8.0f %6.2f %8.1f %8.1f %5s %6d  %s%s\n",
        r.name, r.baseline.calls, r.baseline.errors, r.baseline.p50_us,
        r.baseline.p99_us, r.attack.calls, r.attack.errors, r.attack.p50_us,
        r.attack.p99_us, ratio, r.baseline_rss_kb / 1024.0,
        r.attack_rss_kb / 1024.0, r.fresh_caller_ok ? "ok" : "FAIL",
        r.treezor_requests, OutcomesText(r.outcomes), met ? "" : "  [MISS]");
    absl::StrAppendFormat(&csv, "%s,%d,%d,%.1f,%.1f,%d,%d,%.1f,%.1f,%.3f,%.1f,%.1f,%d\n",
                          r.name, r.baseline.calls, r.baseline.errors,
                          r.baseline.p50_us, r.baseline.p99_us, r.attack.calls,
                          r.attack.errors, r.attack.p50_us, r.attack.p99_us, ratio,
                          r.baseline_rss_kb / 1024.0, r.attack_rss_kb / 1024.0,
                          r.treezor_requests);
    json_floods.push_back(absl::StrFormat(
        R"({"flood":"%s","baseline":%s,"attack":%s,"p99_ratio":%.3f,)"
        R"("baseline_rss_kb":%d,"attack_rss_kb":%d,"fresh_caller_ok":%s,)"
        R"("open_seconds":%.2f,"treezor_requests":%d,"outcomes":%s,"met":%s})",
        r.name, SummaryJson(r.baseline), SummaryJson(r.attack), ratio,
        r.baseline_rss_kb, r.attack_rss_kb, r.fresh_caller_ok ? "true" : "false",
        r.open_seconds, r.treezor_requests, OutcomesJson(r.outcomes),
        met ? "true" : "false"));
  }
  const bool rss_met = hwm_kb < limit_kb;
  all_met = all_met && rss_met && WIFEXITED(exit_status) &&
            WEXITSTATUS(exit_status) == 0;
  absl::StrAppendFormat(
      &table,
      "(* = under attack; p99x = p99 under attack / without, target <= %.1f; "
      "fresh = a caller connecting during the flood got a token; tzreq = "
      "Treezor requests during the flood)\n"
      "broker peak RSS (VmHWM, whole run): %.1f MiB, limit %d MiB: %s; "
      "exit status after SIGTERM: %d\n",
      max_ratio, hwm_kb / 1024.0, absl::GetFlag(FLAGS_memory_limit_mib),
      rss_met ? "below" : "ABOVE", WIFEXITED(exit_status) ? WEXITSTATUS(exit_status) : -1);
  std::fputs(table.c_str(), stdout);
  const std::string json = absl::StrFormat(
      R"({"phase_seconds":%.1f,"connections":%d,"watch_streams":%d,)"
      R"("watch_channels":%d,"health_streams":%d,"scope_sets":%d,)"
      R"("memory_limit_mib":%d,"peak_rss_kb":%d,"floods":[%s],"met":%s})"
      "\n",
      absl::ToDoubleSeconds(phase), absl::GetFlag(FLAGS_connections),
      absl::GetFlag(FLAGS_watch_streams), watch_channels,
      absl::GetFlag(FLAGS_health_streams), absl::GetFlag(FLAGS_scope_sets),
      absl::GetFlag(FLAGS_memory_limit_mib), hwm_kb,
      absl::StrJoin(json_floods, ","), all_met ? "true" : "false");
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json_out)) << json;
  }
  if (!absl::GetFlag(FLAGS_csv_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_csv_out)) << csv;
  }
  if (!absl::GetFlag(FLAGS_txt_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_txt_out)) << table;
  }
  return all_met || !absl::GetFlag(FLAGS_enforce) ? 0 : 1;
}

}  // namespace
}  // namespace treezor::broker::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A legitimate caller's GetToken while hostile peers flood the broker "
      "(tests/bench/README.md).");
  absl::ParseCommandLine(argc, argv);
  return treezor::broker::bench::Run();
}
