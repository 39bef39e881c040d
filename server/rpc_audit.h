// How every RPC of the broker ends, written once: one audit line
// ("msg":"audit"), the RPC metric (treezor_broker_rpcs_total and, for
// GetToken, its latency) and the gRPC status — the one absl::Status ->
// grpc::Status conversion of the services. The time comes from the injected
// clock, never from absl::Now().
//
//   RpcAudit audit(BrokerMetrics::Rpc::kGetToken, clock_, metrics_);
//   audit.SetCaller(peer);          // the certificate's names
//   audit.SetIdentity(matched);     // the config identity that matched
//   audit.SetTenant(request->tenant());
//   ...
//   reactor->Finish(audit.Finish(status));
//
// An audit line names who asked (caller: the certificate's names, typed as
// "uri:", "dns:", "cn:"; identity and identity_kind: the config identity
// that matched and through which kind of name), for what (tenant, scopes),
// the outcome, the latency and, when a token was handed out, its
// fingerprint — never the token. Every field a request controls is bounded,
// so a hostile request cannot write a huge line.
//
// Thread-safety: not thread-safe. An RPC's audit belongs to whoever finishes
// the RPC: the handler, then the one cache callback, or a stream under its
// own lock.
#ifndef TREEZOR_BROKER_SERVER_RPC_AUDIT_H_
#define TREEZOR_BROKER_SERVER_RPC_AUDIT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "grpcpp/support/status.h"
#include "server/logging.h"
#include "server/metrics.h"
#include "server/peer_identity.h"
#include "server/scope_set.h"
#include "server/token_cache.h"

namespace treezor::broker {

class RpcAudit {
 public:
  // Starts the RPC's clock. `clock` must outlive the audit; `metrics` may be
  // null (no metric recorded).
  RpcAudit(BrokerMetrics::Rpc rpc, Clock* clock, BrokerMetrics* metrics);

  // The caller's certificate names (bounded: a prefix, and their count when
  // cut).
  void SetCaller(const PeerIdentity& peer);
  // The config identity the caller matched, and how ("uri", "dns", "cn").
  void SetIdentity(const MatchedIdentity& identity);
  // SetCaller and SetIdentity at once, from fields formatted earlier
  // (AuditCallerJson + AuditIdentityJson) that `owner` keeps alive: the token
  // service formats them once per certificate and policy, not once per call.
  void SetCallerJson(std::shared_ptr<const void> owner, absl::string_view json);
  void SetTenant(absl::string_view tenant);
  // The scopes, as requested (before any validation) or as resolved; logged
  // space-separated, cut to a prefix with their count when long.
  void SetScopes(const google::protobuf::RepeatedPtrField<std::string>& scopes);
  void SetScopes(const ScopeSet& scopes);
  // The tenant and scopes fields as set so far, formatted as the line
  // carries them; and the reverse: SetTenant and SetScopes at once, from
  // such fields that `owner` keeps alive (the token service keeps them per
  // thread for a caller's recent requests, so a repeated request is not
  // formatted again).
  std::string TenantScopesJson() const;
  void SetTenantScopesJson(std::shared_ptr<const void> owner,
                           absl::string_view json);
  // The token handed out (its fingerprint is logged, never the token).
  void SetToken(const CachedToken& token);
  // One more field at the end of the line (e.g. "tokens_sent").
  void AddField(LogField field);

  // Writes an audit line for an event inside the RPC, without finishing it:
  // "stream_started" when a WatchToken stream is accepted, "token_sent" (with
  // the token's fingerprint and version) for each token a stream sends.
  // Nothing once finished.
  void Event(absl::string_view event, const CachedToken* token = nullptr);

  // Writes the audit line and records the RPC metric with `outcome`, the
  // first time only; returns `outcome` as the gRPC status to answer with.
  grpc::Status Finish(const absl::Status& outcome);

  bool finished() const { return finished_; }

 private:
  void SetScopeList(size_t count,
                    absl::FunctionRef<absl::string_view(size_t)> scope);
  // rpc, caller, identity, tenant and scopes: the start of every line, as
  // LogJson fields, appended to `json`.
  void AppendRequestFields(std::string* json) const;
  void AppendTenantScopes(std::string* json) const;

  BrokerMetrics::Rpc rpc_;
  Clock* clock_;
  BrokerMetrics* metrics_;
  absl::Time started_;
  bool finished_ = false;
  // The caller's fields as JSON: SetCaller's and SetIdentity's own, or
  // SetCallerJson's shared ones.
  std::string caller_json_;
  std::string identity_json_;
  std::shared_ptr<const void> shared_owner_;
  absl::string_view shared_json_;
  bool has_tenant_ = false;
  std::string tenant_;
  bool has_scopes_ = false;
  std::string scopes_;
  size_t scope_count_ = 0;  // set when scopes_ is cut
  // SetTenantScopesJson's, used instead of the three above when set.
  std::shared_ptr<const void> tenant_scopes_owner_;
  absl::string_view tenant_scopes_json_;
  std::string token_fingerprint_;
  std::vector<LogField> extra_;
};

// The audit line's fields for a caller's certificate names (`"caller"`, and
// `"caller_names"` when cut) and for the config identity it matched
// (`"identity"`, `"identity_kind"`), as LogJson fields: bounded and escaped.
std::string AuditCallerJson(const PeerIdentity& peer);
std::string AuditIdentityJson(const MatchedIdentity& identity);

// `name` (a caller identity) cut as audit lines cut it, for error messages
// that echo it: at most ~100 bytes once JSON-escaped.
std::string BoundedIdentity(absl::string_view name);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_RPC_AUDIT_H_
