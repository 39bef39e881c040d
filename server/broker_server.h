// Wires one validated configuration into a running broker: the Treezor
// client, the token cache, the policy, the gRPC services on the mTLS port
// (TokenService, health, reflection) and, optionally, health alone on a
// plaintext port for kubelet probes.
//
//   auto broker = BrokerServer::Start(config);
//   ...
//   (*broker)->Shutdown();  // drains within the configured grace period
//
// Thread-safety: Shutdown may be called from any thread, once or more.
#ifndef TREEZOR_BROKER_SERVER_BROKER_SERVER_H_
#define TREEZOR_BROKER_SERVER_BROKER_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "server/clock.h"
#include "server/health_service.h"
#include "server/policy.h"
#include "server/token_cache.h"
#include "server/token_service.h"
#include "server/treezor_oauth_client.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

class BrokerServer {
 public:
  struct Options {
    Clock* clock = SystemClock::Get();
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

  // Ports actually bound (useful with ":0").
  int port() const { return port_; }
  int health_port() const { return health_port_; }

  // Health NOT_SERVING, WatchToken streams ended, no new RPCs, in-flight RPCs
  // given until the grace period to finish; then everything stops.
  void Shutdown() ABSL_LOCKS_EXCLUDED(shutdown_mu_);

  TokenCache& cache() { return *cache_; }
  HealthService& health() { return *health_; }
  TokenService& token_service() { return *token_service_; }

 private:
  BrokerServer() = default;

  absl::Duration grace_period_;
  std::unique_ptr<TreezorOAuthClient> fetcher_;
  std::unique_ptr<TokenCache> cache_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<TokenService> token_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  int port_ = 0;
  int health_port_ = 0;

  Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_BROKER_SERVER_H_
