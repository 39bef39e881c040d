// Prometheus metrics (prefix treezor_broker_), served as plain-HTTP /metrics
// on `metricsListenAddress` by prometheus-cpp's exposer.
//
// Label sets are bounded: RPC method × gRPC code; tenant (configured) ×
// grant × outcome (a fixed set, see FetchResult::outcome); per-entry gauges
// are computed at scrape time from the cache's snapshot, so an entry dropped
// as idle leaves no stale series. Never a secret or a token in a label.
//
// Thread-safety: all methods are thread-safe.
#ifndef TREEZOR_BROKER_SERVER_METRICS_H_
#define TREEZOR_BROKER_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/token_cache.h"

namespace treezor::broker {

class BrokerMetrics final : public TokenCache::Observer {
 public:
  // Sources read at scrape time.
  struct Sources {
    std::function<std::vector<EntrySnapshot>()> entries;
    std::function<int()> upstream_in_flight;
    std::function<int()> watch_streams;
  };

  explicit BrokerMetrics(Clock* clock);
  ~BrokerMetrics() override;

  void SetSources(Sources sources);

  // Serves /metrics on `address` ("host:port"; port 0 picks one).
  absl::Status Serve(const std::string& address);
  // Stops serving /metrics and forgets the sources; returns once no scrape
  // is running, so what the sources read may then be destroyed. Call it
  // from the thread that called Serve.
  void StopServing();
  // The bound port, 0 when not serving.
  int port() const;

  enum class Rpc { kGetToken = 0, kWatchToken, kListTokens, kRefreshToken,
                   kReloadConfig, kCount };
  void RecordRpc(Rpc rpc, absl::StatusCode code, absl::Duration latency);
  void RecordReload(bool applied, int64_t generation);
  // A connection refused at accept (connection_admission.h).
  enum class Port { kMtls = 0, kHealth, kCount };
  void RecordConnectionRefused(Port port, bool peer_limit);
  // "mtls" or "health", as the metric's `port` label says.
  static absl::string_view PortName(Port port);

  // TokenCache::Observer
  void OnHit() override;
  void OnMiss(bool joined_in_flight_fetch) override;
  void OnFetchDone(const CacheKey& key, const TokenCache::FetchReport& report) override;
  void OnEntryDropped(const CacheKey& key) override;

  // Text exposition of everything (what /metrics returns).
  std::string Render() const;

 private:
  class EntryCollector;

  Clock* const clock_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<EntryCollector> entries_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::atomic<int> port_{0};

  static constexpr int kCodes = 17;  // gRPC status codes 0..16
  // [rpc][code], created up front: the hot path does no label lookup.
  std::array<std::array<prometheus::Counter*, kCodes>,
             static_cast<int>(Rpc::kCount)>
      rpcs_{};
  prometheus::Histogram* get_token_latency_ = nullptr;
  prometheus::Counter* hits_ = nullptr;
  prometheus::Counter* misses_ = nullptr;
  prometheus::Counter* joined_ = nullptr;
  prometheus::Counter* dropped_ = nullptr;
  prometheus::Family<prometheus::Counter>* upstream_requests_ = nullptr;
  prometheus::Histogram* upstream_latency_ = nullptr;
  prometheus::Counter* reloads_ok_ = nullptr;
  prometheus::Counter* reloads_failed_ = nullptr;
  prometheus::Gauge* generation_ = nullptr;
  // [port][0: port limit, 1: peer limit]
  std::array<std::array<prometheus::Counter*, 2>,
             static_cast<size_t>(Port::kCount)>
      connections_refused_{};
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_METRICS_H_
