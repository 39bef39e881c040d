// Wires one validated configuration into a running broker: the Treezor
// client, the token cache, the policy, the gRPC services on the mTLS port
// (TokenService, BrokerAdmin, health, reflection), health Check alone on an
// optional plaintext port for kubelet probes, and Prometheus metrics on an
// optional HTTP port, each gRPC port with the `limits` of the config
// (server_options.h); then stops it in a fixed order (Shutdown, and the README's
// "Shutdown" section). Keeping the config current is the ConfigReloader's
// job (config_reloader.h), readiness the Readiness' (readiness.h); what tests
// wait on is in progress() (broker_progress.h).
//
//   auto broker = BrokerServer::Start(config, {.config_path = path});
//   ...
//   (*broker)->Shutdown();  // drains within the configured grace period
//
// Thread-safety: all public methods are thread-safe; Shutdown is idempotent.
// The server owns no lock: each component it wires owns its own state.
#ifndef TREEZOR_BROKER_SERVER_BROKER_SERVER_H_
#define TREEZOR_BROKER_SERVER_BROKER_SERVER_H_

#include <atomic>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "grpcpp/server.h"
#include "server/admin_service.h"
#include "server/broker_progress.h"
#include "server/config_reloader.h"
#include "server/connection_admission.h"
#include "server/external_listener.h"
#include "server/health_service.h"
#include "server/metrics.h"
#include "server/policy.h"
#include "server/readiness.h"
#include "server/server_options.h"
#include "server/settings.h"
#include "server/token_cache.h"
#include "server/token_service.h"
#include "server/treezor_oauth_client.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

class BrokerServer {
 public:
  // What the config does not say. (Settings, with their defaults, are
  // resolved from the config: server/settings.h.)
  struct Options {
    Clock* clock = SystemClock::Get();
    // The file `config` was read from. Reloads (BrokerAdmin.ReloadConfig,
    // SIGHUP, a change on disk) read it again. Empty: no reloads, no watching.
    std::string config_path;
    // Overrides BrokerSettings::file_poll_interval (tests poll faster).
    std::optional<absl::Duration> file_poll_interval;
  };

  // `config` must have passed ValidateConfig. Fails (naming the address) if
  // a listen port is in use: gRPC's SO_REUSEPORT is disabled so a second
  // broker cannot silently share the port.
  static absl::StatusOr<std::unique_ptr<BrokerServer>> Start(
      const v1::BrokerConfig& config, Options options);
  static absl::StatusOr<std::unique_ptr<BrokerServer>> Start(
      const v1::BrokerConfig& config) {
    return Start(config, Options());
  }

  ~BrokerServer();

  // Ports actually bound (useful with ":0"); 0 when not listening.
  int port() const { return mtls_port_.port; }
  int health_port() const { return probe_port_.port; }
  int metrics_port() const { return metrics_ == nullptr ? 0 : metrics_->port(); }

  // Reads the config file again and applies it if it is valid (see
  // ConfigReloader::Reload).
  ReloadResult Reload() { return reloader_->Reload(); }
  int64_t generation() const { return reloader_->generation(); }

  // Health NOT_SERVING, WatchToken streams ended, no new RPCs, in-flight RPCs
  // given until the grace period to finish; then everything stops.
  void Shutdown();

  // For tests and tooling: fetches done, config generation, readiness.
  BrokerProgress& progress() { return progress_; }
  TokenCache& cache() { return *cache_; }
  HealthService& health() { return *health_; }
  TokenService& token_service() { return *token_service_; }
  BrokerMetrics& metrics() { return *metrics_; }

 private:
  class CacheEvents;
  class ReloadTarget;

  BrokerServer() = default;

  absl::Status StartServers(const v1::BrokerConfig& config);
  // Warms up the default scope sets of `only` (every tenant when empty) and
  // makes readiness wait for them.
  void PrefetchDefaults(const Policy& policy, const std::set<std::string>& only);

  Options options_;
  // Resolved once from the config at start-up (a reload that changes them
  // needs a restart).
  BrokerSettings settings_;
  BrokerProgress progress_;
  std::unique_ptr<BrokerMetrics> metrics_;
  std::unique_ptr<HealthService> health_;
  // The probe port's Check-only view of health_.
  std::unique_ptr<HealthCheckOnlyService> probe_health_;
  std::unique_ptr<Readiness> readiness_;
  std::unique_ptr<CacheEvents> cache_events_;
  std::unique_ptr<TreezorOAuthClient> fetcher_;
  std::unique_ptr<TokenCache> cache_;
  std::unique_ptr<TokenService> token_service_;
  std::unique_ptr<AdminService> admin_service_;
  // One gRPC port. The broker accepts its connections itself (listener),
  // counts them (admission) and hands the admitted ones to the gRPC server;
  // the listener stops before the server in Shutdown(), and is destroyed
  // first.
  struct GrpcPort {
    std::unique_ptr<ConnectionAdmission> admission;
    std::unique_ptr<grpc::Server> server;
    std::unique_ptr<ExternalListener> listener;
    int port = 0;
  };
  // Starts `out` on `address` (the config field `field`): bound first, so
  // that a port in use is a start-up error, then gRPC with `options` and
  // `services`, then the accept loop.
  absl::Status StartPort(absl::string_view field, const std::string& address,
                         const GrpcServerOptions& options,
                         std::shared_ptr<grpc::ServerCredentials> credentials,
                         std::initializer_list<grpc::Service*> services,
                         BrokerMetrics::Port metric_port, GrpcPort& out);
  GrpcPort mtls_port_;
  GrpcPort probe_port_;  // health Check only, plaintext; optional
  std::atomic<bool> shut_down_{false};
  std::unique_ptr<ReloadTarget> reload_target_;
  // Last: destroyed first, so no file event arrives during teardown.
  std::unique_ptr<ConfigReloader> reloader_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_BROKER_SERVER_H_
