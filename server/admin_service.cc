#include "server/admin_service.h"

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "server/logging.h"
#include "server/peer_identity.h"
#include "server/rpc_audit.h"

namespace treezor::broker {
namespace {

v1::TokenEntry::State ToProto(EntrySnapshot::State state) {
  switch (state) {
    case EntrySnapshot::State::kFresh: return v1::TokenEntry::FRESH;
    case EntrySnapshot::State::kRenewing: return v1::TokenEntry::RENEWING;
    case EntrySnapshot::State::kFailing: return v1::TokenEntry::FAILING;
    case EntrySnapshot::State::kExpired:
    case EntrySnapshot::State::kEmpty: return v1::TokenEntry::EXPIRED;
  }
  return v1::TokenEntry::STATE_UNSPECIFIED;
}

// ReloadConfig's answer: the reload's outcome as the API states it.
void ToProto(const ReloadResult& result, v1::ReloadConfigResponse* response) {
  response->set_applied(result.applied);
  response->set_error(result.error);
  response->set_config_generation(result.generation);
  for (const auto& f : result.restart_required) {
    response->add_restart_required(f);
  }
  for (const auto& t : result.tenants_added) response->add_tenants_added(t);
  for (const auto& t : result.tenants_removed) response->add_tenants_removed(t);
  for (const auto& t : result.tenants_changed) response->add_tenants_changed(t);
}

}  // namespace

AdminService::AdminService(TokenCache* cache,
                           std::shared_ptr<const Policy> policy, Hooks hooks,
                           Clock* clock, BrokerMetrics* metrics)
    : cache_(cache),
      hooks_(std::move(hooks)),
      clock_(clock),
      metrics_(metrics),
      policy_(std::move(policy)) {}

void AdminService::SetPolicy(std::shared_ptr<const Policy> policy) {
  MutexLock lock(&mu_);
  policy_ = std::move(policy);
}

std::shared_ptr<const Policy> AdminService::policy() const {
  MutexLock lock(&mu_);
  return policy_;
}

absl::Status AdminService::Authorize(grpc::CallbackServerContext* context,
                                     RpcAudit* audit) const {
  auto auth = context->auth_context();
  absl::StatusOr<PeerIdentity> peer =
      auth == nullptr ? PeerIdentity() : PeerIdentityFromAuthContext(*auth);
  if (!peer.ok()) return peer.status();
  audit->SetCaller(*peer);
  absl::StatusOr<MatchedIdentity> admin = policy()->MatchAdmin(*peer);
  if (!admin.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat(admin.status().message(),
                     "; BrokerAdmin is only for identities in admins[]"));
  }
  audit->SetIdentity(*admin);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminService::ListTokens(
    grpc::CallbackServerContext* context, const v1::ListTokensRequest* request,
    v1::ListTokensResponse* response) {
  auto* reactor = context->DefaultReactor();
  RpcAudit audit(BrokerMetrics::Rpc::kListTokens, clock_, metrics_);
  // The tenant it acts on; "*" when it lists them all.
  audit.SetTenant(request->tenant().empty() ? "*" : request->tenant());
  absl::Status status = Authorize(context, &audit);
  if (status.ok()) {
    const absl::Time now = clock_->Now();
    for (const EntrySnapshot& e : cache_->Snapshot()) {
      if (!request->tenant().empty() && e.key.tenant != request->tenant()) {
        continue;
      }
      v1::TokenEntry* out = response->add_entries();
      out->set_tenant(e.key.tenant);
      for (const std::string& s : e.key.scopes.scopes()) out->add_scopes(s);
      out->set_state(ToProto(e.state));
      ToProtoTimestamp(e.expires_at, out->mutable_expires_at());
      ToProtoTimestamp(e.last_renewal, out->mutable_last_renewal());
      ToProtoTimestamp(e.renew_at, out->mutable_next_renewal());
      if (!e.last_error.ok()) {
        out->set_last_error_code(absl::StatusCodeToString(e.last_error.code()));
        out->set_last_error_message(std::string(e.last_error.message()));
      }
      out->set_consecutive_failures(e.consecutive_failures);
      out->set_upstream_requests(e.fetch_count);
      if (e.last_used != absl::InfinitePast()) {
        ToProtoDuration(absl::Trunc(now - e.last_used, absl::Milliseconds(1)),
                        out->mutable_idle());
      }
      out->set_watchers(e.subscribers);
      out->set_token_fingerprint(e.token_fingerprint);
    }
    if (hooks_.generation) response->set_config_generation(hooks_.generation());
  }
  reactor->Finish(audit.Finish(status));
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::RefreshToken(
    grpc::CallbackServerContext* context,
    const v1::RefreshTokenRequest* request,
    v1::RefreshTokenResponse* response) {
  auto* reactor = context->DefaultReactor();
  RpcAudit audit(BrokerMetrics::Rpc::kRefreshToken, clock_, metrics_);
  audit.SetTenant(request->tenant());
  absl::Status status = Authorize(context, &audit);
  ScopeSet scopes;
  if (status.ok() && request->tenant().empty()) {
    status = absl::InvalidArgumentError("tenant: required");
  }
  if (status.ok()) {
    absl::StatusOr<ScopeSet> resolved = policy()->ResolveScopes(
        request->tenant(), std::vector<std::string>(request->scopes().begin(),
                                                    request->scopes().end()));
    if (resolved.ok()) {
      scopes = *std::move(resolved);
    } else {
      status = resolved.status();
    }
  }
  if (!status.ok()) {
    reactor->Finish(audit.Finish(status));
    return reactor;
  }
  audit.SetScopes(scopes);
  cache_->RefreshAsync(
      CacheKey{request->tenant(), std::move(scopes)},
      [reactor, response, audit = std::move(audit)](
          absl::StatusOr<TokenCache::TokenPtr> token) mutable {
        if (token.ok()) {
          ToProtoTimestamp((*token)->token.expires_at,
                           response->mutable_expires_at());
          response->set_token_fingerprint((*token)->fingerprint);
          audit.SetToken(**token);
        }
        reactor->Finish(audit.Finish(token.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ReloadConfig(
    grpc::CallbackServerContext* context, const v1::ReloadConfigRequest*,
    v1::ReloadConfigResponse* response) {
  auto* reactor = context->DefaultReactor();
  RpcAudit audit(BrokerMetrics::Rpc::kReloadConfig, clock_, metrics_);
  absl::Status status = Authorize(context, &audit);
  if (status.ok()) {
    // Inline: reading and validating the file takes milliseconds.
    ToProto(hooks_.reload(), response);
  }
  reactor->Finish(audit.Finish(status));
  return reactor;
}

}  // namespace treezor::broker
