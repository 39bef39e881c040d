// Wires one validated configuration into a running broker: the Treezor
// client, the token cache, the policy, the gRPC services on the mTLS port
// (TokenService, BrokerAdmin, health, reflection), health alone on an optional
// plaintext port for kubelet probes, and Prometheus metrics on an optional
// HTTP port. Then keeps it current: the config file and the credential files
// it names are watched, and a changed config is validated completely and
// applied without dropping a caller (Reload).
//
//   auto broker = BrokerServer::Start(config, {.config_path = path});
//   ...
//   (*broker)->Shutdown();  // drains within the configured grace period
//
// Readiness: health reports NOT_SERVING until every tenant's default token has
// been fetched or has failed, and again while draining.
//
// Thread-safety: all public methods are thread-safe; Shutdown is idempotent.
#ifndef TREEZOR_BROKER_SERVER_BROKER_SERVER_H_
#define TREEZOR_BROKER_SERVER_BROKER_SERVER_H_

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "grpcpp/server.h"
#include "server/admin_service.h"
#include "server/file_watcher.h"
#include "server/health_service.h"
#include "server/metrics.h"
#include "server/policy.h"
#include "server/settings.h"
#include "server/token_cache.h"
#include "server/token_service.h"
#include "server/treezor_oauth_client.h"
#include "treezor/broker/v1/admin_service.pb.h"
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
  int port() const { return port_; }
  int health_port() const { return health_port_; }
  int metrics_port() const { return metrics_ == nullptr ? 0 : metrics_->port(); }

  // Reads the config file again; if it is valid, applies it: tenants added
  // start serving (default tokens fetched), tenants removed stop being
  // renewed and their callers get PERMISSION_DENIED, changed tenants are
  // renewed with their new settings, caller and admin policies apply to the
  // next RPC. Fields that need a restart (listen addresses, serverTls,
  // upstream, renewal, shutdownGracePeriod) are reported, not applied. An
  // invalid file changes nothing. Logged and counted in metrics either way.
  v1::ReloadConfigResponse Reload() ABSL_LOCKS_EXCLUDED(reload_mu_);
  int64_t generation() const { return generation_.load(); }

  // For tests and tooling that must wait for the broker's own progress
  // without polling: true once the config generation is at least `n` /
  // at least `n` requests to Treezor have completed (and been applied).
  bool WaitForGeneration(int64_t n, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(progress_mu_);
  bool WaitForFetches(int64_t n, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(progress_mu_);
  int64_t fetches_done() const ABSL_LOCKS_EXCLUDED(progress_mu_);
  // True once the broker is ready (every tenant's default token fetched or
  // failed: health SERVING).
  bool WaitUntilReady(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(progress_mu_);

  // Health NOT_SERVING, WatchToken streams ended, no new RPCs, in-flight RPCs
  // given until the grace period to finish; then everything stops.
  void Shutdown() ABSL_LOCKS_EXCLUDED(shutdown_mu_);

  TokenCache& cache() { return *cache_; }
  HealthService& health() { return *health_; }
  TokenService& token_service() { return *token_service_; }
  BrokerMetrics& metrics() { return *metrics_; }

 private:
  class CacheEvents;

  BrokerServer() = default;

  absl::Status StartServers(const v1::BrokerConfig& config);
  // Warms up the default scope sets of `tenants` (all when empty) and makes
  // readiness wait for them.
  void PrefetchDefaults(const Policy& policy, const std::set<std::string>& only)
      ABSL_LOCKS_EXCLUDED(ready_mu_);
  void OnFetchDone(const CacheKey& key) ABSL_LOCKS_EXCLUDED(ready_mu_);
  // Watches the config file and every credential file the config names.
  void WatchFilesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  void OnFilesChanged(const std::vector<std::string>& paths)
      ABSL_LOCKS_EXCLUDED(reload_mu_);

  Options options_;
  // Resolved once from the config at start-up (a reload that changes them
  // needs a restart).
  BrokerSettings settings_;
  std::unique_ptr<BrokerMetrics> metrics_;
  std::unique_ptr<CacheEvents> cache_events_;
  std::unique_ptr<TreezorOAuthClient> fetcher_;
  std::unique_ptr<TokenCache> cache_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<TokenService> token_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  int port_ = 0;
  int health_port_ = 0;

  Mutex reload_mu_;
  v1::BrokerConfig config_ ABSL_GUARDED_BY(reload_mu_);
  // Credential file -> tenants that use it.
  std::map<std::string, std::set<std::string>> tenants_by_file_
      ABSL_GUARDED_BY(reload_mu_);
  std::atomic<int64_t> generation_{1};

  Mutex ready_mu_;
  std::set<CacheKey> warming_up_ ABSL_GUARDED_BY(ready_mu_);
  bool draining_ ABSL_GUARDED_BY(ready_mu_) = false;

  mutable Mutex progress_mu_;
  CondVar progress_cv_;
  int64_t fetches_done_ ABSL_GUARDED_BY(progress_mu_) = 0;

  Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;

  // Last: destroyed first, so no file event arrives during teardown.
  std::unique_ptr<FileWatcher> watcher_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_BROKER_SERVER_H_
