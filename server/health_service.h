// grpc.health.v1.Health, served from code generated from the canonical
// health.proto (not gRPC's built-in service) so that server reflection can
// describe it: `grpcurl ... grpc.health.v1.Health/Check` works without proto
// files. The same instance can be registered on several servers (the mTLS
// port and the plaintext probe port).
//
// Service names: "" (the broker as a whole) and those given at construction
// follow readiness (SetServing): SERVING once the broker can answer, NOT_SERVING
// while warming up and while draining. "liveness" is SERVING as long as the
// process runs, so a liveness probe never kills a pod for a slow Treezor or
// during its drain. Unknown names answer NOT_FOUND, as the health protocol
// specifies.
//
// The plaintext probe port serves HealthCheckOnlyService instead: Check (the
// same answers), and Watch answers UNIMPLEMENTED there — a stream an
// anonymous peer could hold open and pile up. Watch stays on the mTLS port.
//
// Thread-safety: all methods are thread-safe.
#ifndef TREEZOR_BROKER_SERVER_HEALTH_SERVICE_H_
#define TREEZOR_BROKER_SERVER_HEALTH_SERVICE_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/sync.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace treezor::broker {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // Starts NOT_SERVING.
  explicit HealthService(std::vector<std::string> services);
  ~HealthService() override;

  void SetServing(bool serving) ABSL_LOCKS_EXCLUDED(mu_);
  bool serving() const ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every Watch stream (at shutdown).
  void EndWatches() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class WatchReactor;
  friend class WatchReactor;
  void Unregister(WatchReactor* reactor) ABSL_LOCKS_EXCLUDED(mu_);

  const std::set<std::string> services_;
  mutable Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  // Each open Watch and the service it watches.
  std::map<WatchReactor*, std::string> watchers_ ABSL_GUARDED_BY(mu_);
};

// grpc.health.v1 for the plaintext probe port (kubelet gRPC probes call
// Check only): Check answered by `health`; Watch not implemented (gRPC's
// generated default answers UNIMPLEMENTED).
class HealthCheckOnlyService final
    : public grpc::health::v1::Health::CallbackService {
 public:
  // `health` must outlive this service.
  explicit HealthCheckOnlyService(HealthService* health) : health_(health) {}

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override {
    return health_->Check(context, request, response);
  }

 private:
  HealthService* const health_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_HEALTH_SERVICE_H_
