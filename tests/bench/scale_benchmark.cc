// scale_benchmark: the real broker binary, as its own process, with N tenants
// (default 10 000) against the in-process Treezor double issuing short-lived
// tokens, watched over several token lifetimes.
//
//   scale_benchmark --tenants=10000 --token_lifetime=60s --lifetimes=4
//       --json_out=scale.json --csv_out=renewals.csv
//
// Every tenant shares one client id and secret (`clientSecretEnv`: one
// environment variable for all) and has its own default scope "t<i>", which
// the broker fetches at start-up and then keeps renewing; the double records
// each request's scope, so every upstream request is attributed to its
// tenant. Nobody calls GetToken: this measures the broker's own upkeep.
//
// What it reports:
//  - warm-up: from the broker's spawn until every tenant has its first token;
//  - the broker's peak RSS (VmHWM) and CPU (utime + stime) from /proc — the
//    broker's share alone, since it is a separate process;
//  - upstream requests in the steady state (after warm-up) against the
//    theory of one renewal per entry per renewal period
//    ((1 - renewRemainingFraction) x lifetime), per-tenant intervals,
//    duplicates (two requests for one tenant less than half a lifetime
//    apart) and late renewals (a token past its safety margin first);
//  - the most requests the double ever had in flight vs the configured
//    upstream.maxConcurrentRequests;
//  - upstream requests per second over the whole run (CSV), and in the
//    steady state their mean, peak and peak/mean: jitter spreading the
//    renewals, or a thundering herd.
// Exit status 1 when a functional target fails: a tenant never warmed up, a
// duplicate or failed request, or the in-flight bound exceeded.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "tests/bench/broker_process.h"
#include "tests/bench/process_stats.h"
#include "tests/testing/cert_factory.h"
#include "tests/testing/fake_treezor.h"
#include "tests/testing/temp_dir.h"

ABSL_FLAG(std::string, broker_binary, TZB_BROKER_BINARY,
          "The treezor-token-broker executable.");
ABSL_FLAG(int, tenants, 10000, "Tenants in the broker's configuration.");
ABSL_FLAG(absl::Duration, token_lifetime, absl::Seconds(60),
          "Lifetime (expires_in) of every token the double issues.");
ABSL_FLAG(double, lifetimes, 4,
          "How long to watch after warm-up, in token lifetimes.");
ABSL_FLAG(int, max_concurrent_requests, 8,
          "The broker's upstream.maxConcurrentRequests.");
ABSL_FLAG(absl::Duration, warmup_timeout, absl::Minutes(5),
          "Give up if not every tenant has a token by then.");
ABSL_FLAG(bool, rsa_client_key, true,
          "The broker's Treezor client key is RSA 2048 (as Treezor signs) "
          "instead of P-256.");
ABSL_FLAG(std::string, json_out, "", "Write the results as JSON here.");
ABSL_FLAG(std::string, csv_out, "",
          "Write upstream requests per second (whole run) as CSV here.");
ABSL_FLAG(std::string, broker_log, "",
          "Keep the broker's log here (default: discarded with the temp dir).");

namespace treezor::broker::bench {
namespace {

using testing::CertFactory;
using testing::CertPaths;
using testing::FakeTreezor;
using testing::ReceivedRequest;
using testing::TempDir;
using SteadyClock = std::chrono::steady_clock;

constexpr char kSecretEnv[] = "TZB_BENCH_CLIENT_SECRET";
constexpr char kSecret[] = "scale-benchmark-secret";
// The broker's renewal defaults (docs/CONFIG.md), which this config keeps.
constexpr double kRenewRemainingFraction = 0.25;
constexpr double kJitterFraction = 0.05;
constexpr double kMinRemainingFraction = 0.10;
constexpr absl::Duration kMinRemaining = absl::Seconds(60);

// One request the double answered, attributed to its tenant.
struct Event {
  double t;  // seconds since the broker was spawned
  int tenant;
  bool ok;
};

// Collects the double's requests (called on its worker threads).
class Recorder {
 public:
  explicit Recorder(int tenants) : first_token_(tenants, -1) {}

  void Start() { start_ = SteadyClock::now(); }
  double Now() const {
    return std::chrono::duration<double>(SteadyClock::now() - start_).count();
  }

  void OnAnswered(const ReceivedRequest& r) ABSL_LOCKS_EXCLUDED(mu_) {
    const double t = Now();
    int tenant = -1;
    auto it = r.params.find("scope");
    if (it != r.params.end() && absl::StartsWith(it->second, "t")) {
      if (!absl::SimpleAtoi(absl::string_view(it->second).substr(1), &tenant) ||
          tenant < 0 || tenant >= static_cast<int>(first_token_.size())) {
        tenant = -1;
      }
    }
    const bool ok = r.http_status == 200 && !r.dropped;
    MutexLock lock(&mu_);
    events_.push_back({t, tenant, ok});
    if (ok && tenant >= 0 && first_token_[tenant] < 0) {
      first_token_[tenant] = t;
      if (++warmed_ == static_cast<int>(first_token_.size())) warmed_at_ = t;
    }
  }

  int warmed() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return warmed_;
  }
  // Seconds since spawn when the last tenant got its first token; < 0 if
  // not yet.
  double warmed_at() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return warmed_at_;
  }
  std::vector<Event> events() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return events_;
  }

 private:
  SteadyClock::time_point start_;
  mutable Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  std::vector<double> first_token_ ABSL_GUARDED_BY(mu_);
  int warmed_ ABSL_GUARDED_BY(mu_) = 0;
  double warmed_at_ ABSL_GUARDED_BY(mu_) = -1;
};

std::string ConfigJson(int tenants, const std::string& base_url,
                       const CertPaths& server, const std::string& client_ca,
                       const CertPaths& upstream, const std::string& treezor_ca,
                       int max_concurrent, absl::Duration idle_timeout) {
  std::string json = absl::StrFormat(
      R"({
  "listenAddress": "127.0.0.1:0",
  "serverTls": {"certFile": "%s", "keyFile": "%s", "clientCaFile": "%s"},
  "upstream": {"maxConcurrentRequests": %d},
  "renewal": {"idleTimeout": "%ds"},
  "tenants": [
)",
      server.cert_file, server.key_file, client_ca, max_concurrent,
      absl::ToInt64Seconds(idle_timeout));
  for (int i = 0; i < tenants; ++i) {
    absl::StrAppendFormat(
        &json,
        R"(    {"name": "t%d", "baseUrl": "%s", "clientId": "1234", )"
        R"("clientSecretEnv": "%s", "defaultScopes": ["t%d"], )"
        R"("upstreamTls": {"caFile": "%s", "certFile": "%s", "keyFile": "%s"}}%s)"
        "\n",
        i, base_url, kSecretEnv, i, treezor_ca, upstream.cert_file,
        upstream.key_file, i + 1 < tenants ? "," : "");
  }
  json += "  ]\n}\n";
  return json;
}

// Lines of the broker's log at `level`; the first few distinct messages
// (with their error field) go to `examples`.
int CountLogLevel(const std::string& log_path, absl::string_view level,
                  std::map<std::string, int>* examples) {
  std::ifstream in(log_path);
  std::string line;
  int n = 0;
  const std::string needle = absl::StrCat("\"level\":\"", level, "\"");
  while (std::getline(in, line)) {
    if (!absl::StrContains(line, needle)) continue;
    ++n;
    // Key: the message and error, without the time and tenant.
    const absl::string_view text = line;
    std::string key;
    for (absl::string_view field : {"\"msg\":", "\"error\":"}) {
      const size_t at = text.find(field);
      if (at == absl::string_view::npos) continue;
      const size_t end = text.find("\",\"", at + field.size());
      absl::StrAppend(&key, text.substr(at, std::min<size_t>(end - at + 1, 200)),
                      " ");
    }
    // Errors name their tenant ("tenant t42: ..."): one key for all tenants.
    for (size_t at = key.find("tenant t"); at != std::string::npos;
         at = key.find("tenant t", at + 1)) {
      size_t end = at + 8;
      while (end < key.size() && absl::ascii_isdigit(key[end])) ++end;
      key.replace(at + 8, end - (at + 8), "N");
    }
    if (examples->size() < 8 || examples->contains(key)) ++(*examples)[key];
  }
  return n;
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double StdDev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = Mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

int Run() {
  const int tenants = absl::GetFlag(FLAGS_tenants);
  const absl::Duration lifetime = absl::GetFlag(FLAGS_token_lifetime);
  const double L = absl::ToDoubleSeconds(lifetime);
  const int bound = absl::GetFlag(FLAGS_max_concurrent_requests);
  const double watch = absl::GetFlag(FLAGS_lifetimes) * L;

  TempDir dir;
  auto internal_ca = CertFactory::Create(dir.path(), "Internal CA");
  auto treezor_ca = CertFactory::Create(dir.path(), "Treezor CA");
  if (!internal_ca.ok() || !treezor_ca.ok()) {
    std::fprintf(stderr, "scale_benchmark: cannot make certificates\n");
    return 1;
  }
  auto server = internal_ca->Issue("broker", CertFactory::ServerLeaf("broker"));
  auto treezor_server =
      treezor_ca->Issue("treezor", CertFactory::ServerLeaf("treezor"));
  CertFactory::LeafOptions client_options{.common_name = "broker"};
  if (absl::GetFlag(FLAGS_rsa_client_key)) {
    client_options.key_type = CertFactory::KeyType::kRsa2048;
  }
  auto upstream = treezor_ca->Issue("broker-to-treezor", client_options);
  if (!server.ok() || !treezor_server.ok() || !upstream.ok()) {
    std::fprintf(stderr, "scale_benchmark: cannot issue certificates\n");
    return 1;
  }

  Recorder recorder(tenants);
  FakeTreezor::Options t;
  t.cert_file = treezor_server->cert_file;
  t.key_file = treezor_server->key_file;
  t.client_ca_file = treezor_ca->ca_cert_file();
  t.client_secret = kSecret;
  t.token_lifetime = lifetime;
  t.on_answered = [&recorder](const ReceivedRequest& r) {
    recorder.OnAnswered(r);
  };
  auto treezor = FakeTreezor::Start(t);
  if (!treezor.ok()) {
    std::fprintf(stderr, "scale_benchmark: cannot start the double: %s\n",
                 treezor.status().ToString().c_str());
    return 1;
  }

  const std::string config_path = dir.File("broker.json");
  {
    // Idle entries are dropped after idleTimeout: keep it past the run.
    const absl::Duration idle = std::max(
        absl::Hours(1), absl::Seconds(3 * watch) + absl::GetFlag(FLAGS_warmup_timeout));
    std::ofstream out(config_path);
    out << ConfigJson(tenants, (*treezor)->base_url(), *server,
                      internal_ca->ca_cert_file(), *upstream,
                      treezor_ca->ca_cert_file(), bound, idle);
  }
  std::string log_path = absl::GetFlag(FLAGS_broker_log);
  if (log_path.empty()) log_path = dir.File("broker.log");

  std::printf("scale_benchmark: %d tenants, token lifetime %s, bound %d, "
              "watching %.0f s after warm-up\n",
              tenants, absl::FormatDuration(lifetime).c_str(), bound, watch);
  std::fflush(stdout);
  recorder.Start();
  absl::StatusOr<pid_t> pid =
      SpawnBroker(absl::GetFlag(FLAGS_broker_binary), config_path, log_path,
                  {absl::StrCat(kSecretEnv, "=", kSecret)});
  if (!pid.ok()) {
    std::fprintf(stderr, "scale_benchmark: %s\n", pid.status().ToString().c_str());
    return 1;
  }

  // Samples of the broker process: seconds since spawn, RSS, CPU.
  struct Sample {
    double t;
    ProcessStats stats;
  };
  std::vector<Sample> samples;
  auto sample = [&]() -> bool {
    absl::StatusOr<ProcessStats> s = ReadProcessStats(*pid);
    if (!s.ok()) return false;
    samples.push_back({recorder.Now(), *s});
    return true;
  };
  const absl::Duration interval =
      std::clamp(lifetime / 60, absl::Milliseconds(100), absl::Seconds(1));

  bool died = false;
  double warm_at = -1;
  ProcessStats at_warm;
  double watch_end = -1;
  const double warmup_limit =
      absl::ToDoubleSeconds(absl::GetFlag(FLAGS_warmup_timeout));
  for (;;) {
    absl::SleepFor(interval);
    if (Exited(*pid) || !sample()) {
      died = true;
      break;
    }
    if (warm_at < 0 && recorder.warmed_at() >= 0) {
      warm_at = recorder.warmed_at();
      at_warm = samples.back().stats;
      watch_end = warm_at + watch;
      std::printf("warm: %d tenants in %.2f s, RSS %.1f MB\n", tenants,
                  warm_at, at_warm.rss_kb / 1024.0);
      std::fflush(stdout);
    }
    const double now = recorder.Now();
    if (warm_at < 0 && now > warmup_limit) break;
    if (warm_at >= 0 && now >= watch_end) break;
  }
  ProcessStats at_end;
  if (!died) at_end = samples.back().stats;
  int64_t max_fds = 0;
  for (const Sample& s : samples) max_fds = std::max(max_fds, s.stats.open_fds);
  const int exit_status = died ? -1 : StopProcess(*pid, absl::Seconds(15));
  const double end = recorder.Now();
  (*treezor)->Stop();
  const int max_in_flight = (*treezor)->max_in_flight();
  const std::vector<Event> events = recorder.events();
  std::map<std::string, int> log_examples;
  const int warnings = CountLogLevel(log_path, "warning", &log_examples);
  const int errors = CountLogLevel(log_path, "error", &log_examples);

  // Per tenant: the times of successful requests.
  std::vector<std::vector<double>> per_tenant(tenants);
  int64_t failed = 0, unattributed = 0;
  for (const Event& e : events) {
    if (e.tenant < 0) {
      ++unattributed;
      continue;
    }
    if (!e.ok) {
      ++failed;
      continue;
    }
    per_tenant[e.tenant].push_back(e.t);
  }
  const double safety =
      std::min(absl::ToDoubleSeconds(kMinRemaining), kMinRemainingFraction * L);
  const double period = (1 - kRenewRemainingFraction) * L;
  std::vector<double> intervals;
  int64_t duplicates = 0, late = 0, never_renewed = 0;
  std::vector<std::string> duplicate_examples;
  int min_in_window = INT32_MAX, max_in_window = 0;
  int64_t ok_in_window = 0;
  for (int i = 0; i < tenants; ++i) {
    auto& times = per_tenant[i];
    std::sort(times.begin(), times.end());
    int in_window = 0;
    for (size_t k = 0; k < times.size(); ++k) {
      if (warm_at >= 0 && times[k] > warm_at && times[k] <= watch_end) {
        ++in_window;
      }
      if (k == 0) continue;
      const double gap = times[k] - times[k - 1];
      intervals.push_back(gap / L);
      if (gap < 0.5 * L) {
        ++duplicates;
        if (duplicate_examples.size() < 5) {
          duplicate_examples.push_back(absl::StrFormat(
              "t%d at %.2fs and %.2fs", i, times[k - 1], times[k]));
        }
      }
      if (gap > L - safety) ++late;
    }
    ok_in_window += in_window;
    min_in_window = std::min(min_in_window, in_window);
    max_in_window = std::max(max_in_window, in_window);
    if (times.size() < 2 && watch >= L) ++never_renewed;
  }
  if (tenants == 0) min_in_window = 0;

  // Requests per second over the whole run; steady-state statistics over the
  // whole seconds after warm-up.
  const int seconds = static_cast<int>(std::ceil(end)) + 1;
  std::vector<int> per_second(seconds, 0), first_per_second(seconds, 0);
  {
    std::vector<bool> seen(tenants, false);
    std::vector<Event> sorted = events;
    std::sort(sorted.begin(), sorted.end(),
              [](const Event& a, const Event& b) { return a.t < b.t; });
    for (const Event& e : sorted) {
      const int s = std::clamp(static_cast<int>(e.t), 0, seconds - 1);
      ++per_second[s];
      if (e.ok && e.tenant >= 0 && !seen[e.tenant]) {
        seen[e.tenant] = true;
        ++first_per_second[s];
      }
    }
  }
  std::vector<double> steady;
  if (warm_at >= 0) {
    for (int s = static_cast<int>(std::ceil(warm_at));
         s + 1 <= static_cast<int>(watch_end) && s < seconds; ++s) {
      steady.push_back(per_second[s]);
    }
  }
  const double steady_mean = Mean(steady);
  const double steady_max =
      steady.empty() ? 0 : *std::max_element(steady.begin(), steady.end());
  const double theory_rate = tenants / period;
  const double window = warm_at >= 0 ? watch_end - warm_at : 0;
  const double expected_in_window = theory_rate * window;
  // One renewal per entry per period: the observed rate per entry against
  // the theoretical one (1 / period), from the mean interval between a
  // tenant's consecutive requests. (Counts in the window depend on where
  // the window cuts the renewal cycle; intervals do not.)
  const double rate_ratio =
      Mean(intervals) > 0 ? (period / L) / Mean(intervals) : 0;
  const double cpu_window = at_end.cpu_seconds - at_warm.cpu_seconds;
  const double cpu_per_renewal_ms =
      ok_in_window > 0 ? cpu_window * 1000 / ok_in_window : 0;
  const double cpu_per_warm_fetch_ms =
      warm_at >= 0 ? at_warm.cpu_seconds * 1000 / tenants : 0;
  const double peak_rss_mb = at_end.peak_rss_kb / 1024.0;

  const bool warmed = warm_at >= 0;
  const bool functional_ok = warmed && !died && duplicates == 0 &&
                             failed == 0 && max_in_flight <= bound;

  std::printf("\n");
  std::printf("%-44s %s\n", "broker",
              died ? "EXITED EARLY (see its log)" : "ran to the end");
  std::printf("%-44s %s\n", "warm-up (spawn -> every tenant has a token)",
              warmed ? absl::StrFormat("%.2f s", warm_at).c_str()
                     : absl::StrFormat("INCOMPLETE: %d of %d tenants",
                                       recorder.warmed(), tenants)
                           .c_str());
  std::printf("%-44s %.1f MB (RSS after warm-up %.1f MB, at end %.1f MB)\n",
              "peak RSS (VmHWM)", peak_rss_mb, at_warm.rss_kb / 1024.0,
              at_end.rss_kb / 1024.0);
  std::printf("%-44s %lld\n", "broker threads", static_cast<long long>(at_end.threads));
  std::printf("%-44s %lld max (%.2f per tenant)\n", "broker open file descriptors",
              static_cast<long long>(max_fds),
              tenants > 0 ? static_cast<double>(max_fds) / tenants : 0);
  std::printf("%-44s %.3f ms warm-up fetch, %.3f ms steady renewal\n",
              "broker CPU per upstream token", cpu_per_warm_fetch_ms,
              cpu_per_renewal_ms);
  std::printf("%-44s %lld in %.0f s = %.1f/s; theory %.1f/s (%.0f); "
              "ratio %.3f\n",
              "steady-state renewals", static_cast<long long>(ok_in_window),
              window, window > 0 ? ok_in_window / window : 0, theory_rate,
              expected_in_window,
              expected_in_window > 0 ? ok_in_window / expected_in_window : 0);
  std::printf("%-44s min %d, max %d per tenant\n", "renewals in the window",
              min_in_window, max_in_window);
  std::printf("%-44s mean %.4f L, sd %.4f L (jitter alone: sd %.4f L)\n",
              "renewal interval", Mean(intervals), StdDev(intervals),
              2 * kJitterFraction / std::sqrt(12.0) * std::sqrt(2.0));
  std::printf("%-44s %.3f (1 = one renewal per entry every %.2f s)\n",
              "renewal rate per entry / theory", rate_ratio, period);
  std::printf("%-44s %lld duplicates, %lld late, %lld failed, %lld never "
              "renewed, %lld unattributed\n",
              "per-tenant requests", static_cast<long long>(duplicates),
              static_cast<long long>(late), static_cast<long long>(failed),
              static_cast<long long>(never_renewed),
              static_cast<long long>(unattributed));
  for (const std::string& d : duplicate_examples) {
    std::printf("  duplicate: %s\n", d.c_str());
  }
  std::printf("%-44s %d (bound %d)\n", "upstream in flight, max", max_in_flight,
              bound);
  std::printf("%-44s mean %.1f/s, max %.0f/s, max/mean %.2f\n",
              "steady-state requests per second", steady_mean, steady_max,
              steady_mean > 0 ? steady_max / steady_mean : 0);
  std::printf("%-44s %d warnings, %d errors\n", "broker log", warnings, errors);
  for (const auto& [key, count] : log_examples) {
    std::printf("  %7d x %s\n", count, key.c_str());
  }
  std::printf("\n%s: functional targets (warm-up complete, no duplicate or "
              "failed request, in-flight <= bound)\n",
              functional_ok ? "PASS" : "FAIL");

  if (const std::string path = absl::GetFlag(FLAGS_csv_out); !path.empty()) {
    std::ofstream out(path);
    out << "second,requests,first_tokens,renewals\n";
    for (int s = 0; s < seconds; ++s) {
      out << s << "," << per_second[s] << "," << first_per_second[s] << ","
          << per_second[s] - first_per_second[s] << "\n";
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream out(path);
    out << absl::StrFormat(
        "{\n  \"tenants\": %d,\n  \"token_lifetime_s\": %.3f,\n"
        "  \"renewal_period_s\": %.3f,\n  \"watch_s\": %.3f,\n"
        "  \"max_concurrent_requests\": %d,\n  \"broker_exited_early\": %s,\n"
        "  \"broker_exit_status\": %d,\n"
        "  \"warmed\": %s,\n  \"warmed_tenants\": %d,\n  \"warmup_s\": %.3f,\n"
        "  \"peak_rss_mb\": %.2f,\n  \"rss_after_warmup_mb\": %.2f,\n"
        "  \"rss_at_end_mb\": %.2f,\n  \"broker_threads\": %d,\n"
        "  \"max_open_fds\": %d,\n"
        "  \"cpu_warmup_s\": %.3f,\n  \"cpu_steady_s\": %.3f,\n"
        "  \"cpu_per_warmup_fetch_ms\": %.4f,\n"
        "  \"cpu_per_renewal_ms\": %.4f,\n"
        "  \"steady_window_s\": %.3f,\n  \"steady_renewals\": %d,\n"
        "  \"expected_renewals\": %.1f,\n  \"renewal_ratio\": %.4f,\n"
        "  \"theory_rate_per_s\": %.3f,\n  \"renewal_rate_ratio\": %.4f,\n"
        "  \"renewals_per_tenant_min\": %d,\n"
        "  \"renewals_per_tenant_max\": %d,\n"
        "  \"interval_mean_lifetimes\": %.5f,\n"
        "  \"interval_sd_lifetimes\": %.5f,\n"
        "  \"duplicates\": %d,\n  \"late\": %d,\n  \"failed\": %d,\n"
        "  \"never_renewed\": %d,\n  \"unattributed\": %d,\n"
        "  \"upstream_requests\": %d,\n"
        "  \"max_in_flight\": %d,\n  \"steady_rate_mean\": %.3f,\n"
        "  \"steady_rate_max\": %.1f,\n  \"steady_rate_sd\": %.3f,\n"
        "  \"log_warnings\": %d,\n  \"log_errors\": %d,\n"
        "  \"functional_pass\": %s\n}\n",
        tenants, L, period, watch, bound, died ? "true" : "false", exit_status,
        warmed ? "true" : "false", recorder.warmed(), warm_at, peak_rss_mb,
        at_warm.rss_kb / 1024.0, at_end.rss_kb / 1024.0, at_end.threads, max_fds,
        at_warm.cpu_seconds, cpu_window, cpu_per_warm_fetch_ms,
        cpu_per_renewal_ms, window, ok_in_window, expected_in_window,
        expected_in_window > 0 ? ok_in_window / expected_in_window : 0,
        theory_rate, rate_ratio, min_in_window, max_in_window, Mean(intervals),
        StdDev(intervals), duplicates, late, failed, never_renewed,
        unattributed, static_cast<int64_t>(events.size()), max_in_flight,
        steady_mean, steady_max, StdDev(steady), warnings, errors,
        functional_ok ? "true" : "false");
  }
  return functional_ok ? 0 : 1;
}

}  // namespace
}  // namespace treezor::broker::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Scale benchmark: the broker binary with thousands of tenants against "
      "the Treezor double (see the comment at the top of scale_benchmark.cc).");
  absl::ParseCommandLine(argc, argv);
  return treezor::broker::bench::Run();
}
