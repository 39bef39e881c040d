// treezor.broker.v1.BrokerAdmin: ListTokens, RefreshToken, ReloadConfig for
// identities listed in `admins[]`; PERMISSION_DENIED for everyone else. Thin,
// like TokenService: authorize, delegate, convert the status, audit.
//
// Thread-safety: thread-safe; the policy can be swapped (config reload).
#ifndef TREEZOR_BROKER_SERVER_ADMIN_SERVICE_H_
#define TREEZOR_BROKER_SERVER_ADMIN_SERVICE_H_

#include <functional>
#include <memory>

#include "common/clock.h"
#include "common/sync.h"
#include "server/config_reloader.h"
#include "server/metrics.h"
#include "server/policy.h"
#include "server/rpc_audit.h"
#include "server/token_cache.h"
#include "treezor/broker/v1/admin_service.grpc.pb.h"

namespace treezor::broker {

class AdminService final : public v1::BrokerAdmin::CallbackService {
 public:
  struct Hooks {
    // Applies the config file again (ConfigReloader::Reload).
    std::function<ReloadResult()> reload;
    std::function<int64_t()> generation;
  };

  // `cache`, `clock` and `metrics` (nullable) must outlive the service.
  AdminService(TokenCache* cache, std::shared_ptr<const Policy> policy,
               Hooks hooks, Clock* clock, BrokerMetrics* metrics);

  void SetPolicy(std::shared_ptr<const Policy> policy) ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ServerUnaryReactor* ListTokens(
      grpc::CallbackServerContext* context,
      const v1::ListTokensRequest* request,
      v1::ListTokensResponse* response) override;
  grpc::ServerUnaryReactor* RefreshToken(
      grpc::CallbackServerContext* context,
      const v1::RefreshTokenRequest* request,
      v1::RefreshTokenResponse* response) override;
  grpc::ServerUnaryReactor* ReloadConfig(
      grpc::CallbackServerContext* context,
      const v1::ReloadConfigRequest* request,
      v1::ReloadConfigResponse* response) override;

 private:
  std::shared_ptr<const Policy> policy() const ABSL_LOCKS_EXCLUDED(mu_);
  // OK if the caller's certificate matches an admins[] identity (typed, as
  // for callers); names the caller and the matched identity in `audit`.
  absl::Status Authorize(grpc::CallbackServerContext* context,
                         RpcAudit* audit) const;

  TokenCache* const cache_;
  const Hooks hooks_;
  Clock* const clock_;
  BrokerMetrics* const metrics_;
  mutable Mutex mu_;
  std::shared_ptr<const Policy> policy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_ADMIN_SERVICE_H_
