#include "server/metrics.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sync.h"
#include "prometheus/collectable.h"
#include "prometheus/text_serializer.h"

namespace treezor::broker {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr absl::string_view kRpcNames[] = {"GetToken", "WatchToken",
                                           "ListTokens", "RefreshToken",
                                           "ReloadConfig"};

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
  return *buckets;
}

ClientMetric Sample(const CacheKey& key, double value, bool counter = false) {
  ClientMetric m;
  m.label = {{"scopes", key.scopes.ToOAuthString()}, {"tenant", key.tenant}};
  if (counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

}  // namespace

// Per-entry and point-in-time gauges, computed from the sources at scrape.
class BrokerMetrics::EntryCollector final : public prometheus::Collectable {
 public:
  explicit EntryCollector(Clock* clock) : clock_(clock) {}

  void SetSources(Sources sources) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    sources_ = std::move(sources);
  }

  std::vector<MetricFamily> Collect() const override ABSL_LOCKS_EXCLUDED(mu_) {
    Sources sources;
    {
      MutexLock lock(&mu_);
      sources = sources_;
    }
    std::vector<MetricFamily> out;
    if (sources.entries) {
      const absl::Time now = clock_->Now();
      auto expiry = Family("treezor_broker_token_expiry_seconds",
                           "Seconds until the cached token expires (negative: "
                           "expired).",
                           MetricType::Gauge);
      auto renewal = Family("treezor_broker_token_last_renewal_timestamp_seconds",
                            "Unix time of the last successful renewal.",
                            MetricType::Gauge);
      auto failures = Family("treezor_broker_token_consecutive_failures",
                             "Consecutive failed renewal attempts.",
                             MetricType::Gauge);
      auto served = Family("treezor_broker_tokens_served_while_failing_total",
                           "Tokens served from cache while renewal was failing.",
                           MetricType::Counter);
      auto entries = Family("treezor_broker_cache_entries",
                            "Cached (tenant, scope set) entries.",
                            MetricType::Gauge);
      const std::vector<EntrySnapshot> snapshot = sources.entries();
      for (const EntrySnapshot& e : snapshot) {
        if (e.expires_at != absl::InfinitePast()) {
          expiry.metric.push_back(
              Sample(e.key, absl::ToDoubleSeconds(e.expires_at - now)));
        }
        if (e.last_renewal != absl::InfinitePast()) {
          renewal.metric.push_back(
              Sample(e.key, absl::ToDoubleSeconds(e.last_renewal -
                                                  absl::UnixEpoch())));
        }
        failures.metric.push_back(Sample(e.key, e.consecutive_failures));
        served.metric.push_back(
            Sample(e.key, static_cast<double>(e.served_while_failing), true));
      }
      ClientMetric count;
      count.gauge.value = static_cast<double>(snapshot.size());
      entries.metric.push_back(count);
      for (auto* f : {&expiry, &renewal, &failures, &served, &entries}) {
        out.push_back(std::move(*f));
      }
    }
    if (sources.upstream_in_flight) {
      auto f = Family("treezor_broker_upstream_in_flight",
                      "Requests to Treezor in flight.", MetricType::Gauge);
      ClientMetric m;
      m.gauge.value = sources.upstream_in_flight();
      f.metric.push_back(m);
      out.push_back(std::move(f));
    }
    if (sources.watch_streams) {
      auto f = Family("treezor_broker_watch_streams",
                      "Open WatchToken streams.", MetricType::Gauge);
      ClientMetric m;
      m.gauge.value = sources.watch_streams();
      f.metric.push_back(m);
      out.push_back(std::move(f));
    }
    return out;
  }

 private:
  Clock* const clock_;
  mutable Mutex mu_;
  Sources sources_ ABSL_GUARDED_BY(mu_);
};

BrokerMetrics::BrokerMetrics(Clock* clock)
    : clock_(clock),
      registry_(std::make_shared<prometheus::Registry>()),
      entries_(std::make_shared<EntryCollector>(clock)) {
  auto& rpcs = prometheus::BuildCounter()
                   .Name("treezor_broker_rpcs_total")
                   .Help("RPCs handled, by method and gRPC status code.")
                   .Register(*registry_);
  for (int r = 0; r < static_cast<int>(Rpc::kCount); ++r) {
    for (int c = 0; c < kCodes; ++c) {
      rpcs_[r][c] = &rpcs.Add(
          {{"method", std::string(kRpcNames[r])},
           {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(c))}});
    }
  }
  get_token_latency_ = &prometheus::BuildHistogram()
                            .Name("treezor_broker_get_token_latency_seconds")
                            .Help("GetToken latency, as seen by the server.")
                            .Register(*registry_)
                            .Add({}, LatencyBuckets());
  auto& cache = prometheus::BuildCounter()
                    .Name("treezor_broker_cache_requests_total")
                    .Help("Token lookups: hit (answered from cache), miss "
                          "(started a fetch), joined (a single-flight waiter "
                          "on a fetch already running).")
                    .Register(*registry_);
  hits_ = &cache.Add({{"result", "hit"}});
  misses_ = &cache.Add({{"result", "miss"}});
  joined_ = &cache.Add({{"result", "joined"}});
  dropped_ = &prometheus::BuildCounter()
                  .Name("treezor_broker_cache_idle_drops_total")
                  .Help("Entries dropped after their idle timeout.")
                  .Register(*registry_)
                  .Add({});
  upstream_requests_ =
      &prometheus::BuildCounter()
           .Name("treezor_broker_upstream_requests_total")
           .Help("Token requests to Treezor by tenant, grant type and outcome "
                 "(ok, connect, tls, timeout, network, http_4xx, http_429, "
                 "http_5xx, unparsable, oauth_<code>, config).")
           .Register(*registry_);
  upstream_latency_ = &prometheus::BuildHistogram()
                           .Name("treezor_broker_upstream_latency_seconds")
                           .Help("Latency of token requests to Treezor.")
                           .Register(*registry_)
                           .Add({}, LatencyBuckets());
  auto& reloads = prometheus::BuildCounter()
                      .Name("treezor_broker_config_reloads_total")
                      .Help("Configuration reloads by outcome.")
                      .Register(*registry_);
  reloads_ok_ = &reloads.Add({{"outcome", "applied"}});
  reloads_failed_ = &reloads.Add({{"outcome", "rejected"}});
  generation_ = &prometheus::BuildGauge()
                     .Name("treezor_broker_config_generation")
                     .Help("Configuration generation in force (1 at start).")
                     .Register(*registry_)
                     .Add({});
  generation_->Set(1);
  auto& refused =
      prometheus::BuildCounter()
          .Name("treezor_broker_connections_refused_total")
          .Help("Connections reset at accept, before any handshake, by port "
                "(mtls, health) and the limit reached (port: "
                "limits.maxConnections or limits.healthMaxConnections; peer: "
                "the per-peer-address limit).")
          .Register(*registry_);
  for (Port port : {Port::kMtls, Port::kHealth}) {
    const std::string name(PortName(port));
    connections_refused_[static_cast<size_t>(port)] = {
        &refused.Add({{"port", name}, {"limit", "port"}}),
        &refused.Add({{"port", name}, {"limit", "peer"}})};
  }
}

absl::string_view BrokerMetrics::PortName(Port port) {
  return port == Port::kMtls ? "mtls" : "health";
}

void BrokerMetrics::RecordConnectionRefused(Port port, bool peer_limit) {
  connections_refused_[static_cast<size_t>(port)][peer_limit ? 1 : 0]
      ->Increment();
}

BrokerMetrics::~BrokerMetrics() = default;

void BrokerMetrics::SetSources(Sources sources) {
  entries_->SetSources(std::move(sources));
}

absl::Status BrokerMetrics::Serve(const std::string& address) {
  try {
    // Note: stopping civetweb's listener takes up to its 2 s poll quantum.
    exposer_ = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "metricsListenAddress: cannot listen on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(entries_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  port_.store(ports.empty() ? 0 : ports.front());
  return absl::OkStatus();
}

void BrokerMetrics::StopServing() {
  // Joins civetweb's threads: no scrape is running once this returns.
  exposer_.reset();
  port_.store(0);
  entries_->SetSources({});
}

int BrokerMetrics::port() const { return port_.load(); }

void BrokerMetrics::RecordRpc(Rpc rpc, absl::StatusCode code,
                              absl::Duration latency) {
  const int c = static_cast<int>(code);
  if (c >= 0 && c < kCodes) rpcs_[static_cast<int>(rpc)][c]->Increment();
  if (rpc == Rpc::kGetToken) {
    get_token_latency_->Observe(absl::ToDoubleSeconds(latency));
  }
}

void BrokerMetrics::RecordReload(bool applied, int64_t generation) {
  (applied ? reloads_ok_ : reloads_failed_)->Increment();
  generation_->Set(static_cast<double>(generation));
}

void BrokerMetrics::OnHit() { hits_->Increment(); }

void BrokerMetrics::OnMiss(bool joined_in_flight_fetch) {
  (joined_in_flight_fetch ? joined_ : misses_)->Increment();
}

void BrokerMetrics::OnFetchDone(const CacheKey& key,
                                const TokenCache::FetchReport& report) {
  upstream_requests_
      ->Add({{"tenant", key.tenant},
             {"grant_type", report.grant_type.empty() ? "none" : report.grant_type},
             {"outcome", report.outcome.empty() ? "other" : report.outcome}})
      .Increment();
  if (!report.grant_type.empty()) {
    upstream_latency_->Observe(absl::ToDoubleSeconds(report.latency));
  }
}

void BrokerMetrics::OnEntryDropped(const CacheKey&) { dropped_->Increment(); }

std::string BrokerMetrics::Render() const {
  std::vector<MetricFamily> families = registry_->Collect();
  for (MetricFamily& f : entries_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace treezor::broker
