#include "server/rpc_audit.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace treezor::broker {
namespace {

// The RPC names of the audit line, indexed like BrokerMetrics::Rpc.
constexpr absl::string_view kRpcNames[] = {
    "GetToken", "WatchToken", "ListTokens", "RefreshToken", "ReloadConfig"};
static_assert(std::size(kRpcNames) ==
              static_cast<size_t>(BrokerMetrics::Rpc::kCount));

// Every field a request controls is cut so that its JSON-escaped form stays
// within these many bytes: with the fixed fields, an audit line stays under
// 1 KiB whatever the request or certificate (tests/integration check it).
constexpr size_t kMaxLoggedCaller = 160;
constexpr size_t kMaxLoggedIdentity = 96;
constexpr size_t kMaxLoggedTenant = 96;
constexpr size_t kMaxLoggedScopes = 160;
constexpr size_t kMaxLoggedError = 200;

// The caller field of an RPC whose caller is not known (no certificate).
constexpr absl::string_view kNoCaller = ",\"caller\":\"\"";

// Bytes `c` takes once JSON-escaped (internal::AppendJsonString).
size_t EscapedSize(unsigned char c) {
  if (c == '"' || c == '\\') return 2;
  if (c < 0x20 || c == 0x7f) return 6;  // at most six bytes escaped
  return 1;
}

// The longest prefix of `s` whose escaped form fits in `max` bytes, with
// "..." marking a cut; `cut` (if given) says whether it was cut.
std::string Bounded(absl::string_view s, size_t max, bool* cut = nullptr) {
  size_t escaped = 0;
  size_t n = 0;
  for (; n < s.size(); ++n) {
    escaped += EscapedSize(static_cast<unsigned char>(s[n]));
    if (escaped > max) break;
  }
  if (cut != nullptr) *cut = n < s.size();
  if (n == s.size()) return std::string(s);
  return absl::StrCat(s.substr(0, n), "...");
}

// The "token_fp" field: a CachedToken::fingerprint is lowercase hex, so
// it is appended as it is, with nothing to escape.
void AppendTokenFingerprint(absl::string_view fingerprint, std::string* json) {
  absl::StrAppend(json, ",\"token_fp\":\"", fingerprint, "\"");
}

}  // namespace

std::string BoundedIdentity(absl::string_view name) {
  return Bounded(name, kMaxLoggedIdentity);
}

RpcAudit::RpcAudit(BrokerMetrics::Rpc rpc, Clock* clock,
                   BrokerMetrics* metrics)
    : rpc_(rpc), clock_(clock), metrics_(metrics), started_(clock->Now()) {}

void RpcAudit::SetCaller(const PeerIdentity& peer) {
  caller_json_ = AuditCallerJson(peer);
}

void RpcAudit::SetIdentity(const MatchedIdentity& identity) {
  identity_json_ = AuditIdentityJson(identity);
}

void RpcAudit::SetCallerJson(std::shared_ptr<const void> owner,
                             absl::string_view json) {
  caller_json_.clear();
  identity_json_.clear();
  shared_owner_ = std::move(owner);
  shared_json_ = json;
}

void RpcAudit::SetTenant(absl::string_view tenant) {
  has_tenant_ = true;
  tenant_ = Bounded(tenant, kMaxLoggedTenant);
}

void RpcAudit::SetScopes(const ScopeSet& scopes) {
  SetScopeList(scopes.scopes().size(),
               [&scopes](size_t i) -> absl::string_view {
                 return scopes.scopes()[i];
               });
}

void RpcAudit::SetScopes(
    const google::protobuf::RepeatedPtrField<std::string>& scopes) {
  SetScopeList(static_cast<size_t>(scopes.size()),
               [&scopes](size_t i) -> absl::string_view {
                 return scopes[static_cast<int>(i)];
               });
}

void RpcAudit::SetScopeList(
    size_t count, absl::FunctionRef<absl::string_view(size_t)> scope) {
  has_scopes_ = true;
  std::string joined;
  for (size_t i = 0; i < count && joined.size() <= kMaxLoggedScopes; ++i) {
    absl::StrAppend(&joined, i == 0 ? "" : " ", scope(i));
  }
  bool cut = false;
  scopes_ = Bounded(joined, kMaxLoggedScopes, &cut);
  scope_count_ = cut ? count : 0;
}

void RpcAudit::SetToken(const CachedToken& token) {
  token_fingerprint_ = token.fingerprint;
}

void RpcAudit::AddField(LogField field) { extra_.push_back(std::move(field)); }

// The thread's buffer for an audit line's fields, reused: no allocation per
// RPC (one that grew past a few lines' size is let go).
static std::string& FieldsBuffer() {
  thread_local std::string json;
  internal::ResetReusedLogBuffer(&json);
  return json;
}

void RpcAudit::AppendRequestFields(std::string* json_out) const {
  // Appended to one string (this runs on every RPC): no field copies.
  std::string& json = *json_out;
  absl::StrAppend(&json, ",\"rpc\":\"", kRpcNames[static_cast<int>(rpc_)],
                  "\"");
  if (shared_owner_ != nullptr) {
    absl::StrAppend(&json, shared_json_);
  } else {
    absl::StrAppend(&json, caller_json_.empty() ? kNoCaller : caller_json_,
                    identity_json_);
  }
  AppendTenantScopes(&json);
}

void RpcAudit::AppendTenantScopes(std::string* json) const {
  if (tenant_scopes_owner_ != nullptr) {
    json->append(tenant_scopes_json_.data(), tenant_scopes_json_.size());
    return;
  }
  if (has_tenant_) internal::AppendJsonField("tenant", tenant_, json);
  if (has_scopes_) internal::AppendJsonField("scopes", scopes_, json);
  if (scope_count_ > 0) {
    absl::StrAppend(json, ",\"scope_count\":\"", scope_count_, "\"");
  }
}

std::string RpcAudit::TenantScopesJson() const {
  std::string json;
  AppendTenantScopes(&json);
  return json;
}

void RpcAudit::SetTenantScopesJson(std::shared_ptr<const void> owner,
                                   absl::string_view json) {
  tenant_scopes_owner_ = std::move(owner);
  tenant_scopes_json_ = json;
}

void RpcAudit::Event(absl::string_view event, const CachedToken* token) {
  if (finished_) return;
  std::string& json = FieldsBuffer();
  AppendRequestFields(&json);
  internal::AppendJsonField("event", event, &json);
  if (token != nullptr) {
    AppendTokenFingerprint(token->fingerprint, &json);
    absl::StrAppend(&json, ",\"version\":\"", token->version, "\"");
  }
  LogJson(LogLevel::kInfo, "audit", json);
}

grpc::Status RpcAudit::Finish(const absl::Status& outcome) {
  if (!finished_) {
    finished_ = true;
    const absl::Duration latency = clock_->Now() - started_;
    std::string& json = FieldsBuffer();
    AppendRequestFields(&json);
    absl::StrAppend(&json, ",\"outcome\":\"",
                    absl::StatusCodeToString(outcome.code()), "\",\"latency_us\":\"",
                    absl::ToInt64Microseconds(latency), "\"");
    if (!outcome.ok()) {
      // Errors may echo the request (bounded there too); cut again here.
      internal::AppendJsonField("error",
                                Bounded(outcome.message(), kMaxLoggedError),
                                &json);
    }
    if (!token_fingerprint_.empty()) {
      AppendTokenFingerprint(token_fingerprint_, &json);
    }
    for (const LogField& f : extra_) {
      internal::AppendJsonField(f.key, f.value, &json);
    }
    LogJson(LogLevel::kInfo, "audit", json);
    if (metrics_ != nullptr) metrics_->RecordRpc(rpc_, outcome.code(), latency);
  }
  return ToGrpcStatus(outcome);
}

std::string AuditCallerJson(const PeerIdentity& peer) {
  // Joined while it may still fit, then cut once: a certificate with a
  // hundred long SANs costs no more than one with two.
  std::string joined;
  auto add = [&joined](absl::string_view kind, absl::string_view name) {
    if (joined.size() > kMaxLoggedCaller) return;
    absl::StrAppend(&joined, joined.empty() ? "" : ",", kind, ":", name);
  };
  for (const std::string& uri : peer.uri_sans) add("uri", uri);
  for (const std::string& dns : peer.dns_sans) add("dns", dns);
  if (!peer.common_name.empty()) add("cn", peer.common_name);
  bool cut = false;
  std::string json;
  internal::AppendJsonField("caller", Bounded(joined, kMaxLoggedCaller, &cut),
                            &json);
  if (cut) absl::StrAppend(&json, ",\"caller_names\":\"", peer.name_count(), "\"");
  return json;
}

std::string AuditIdentityJson(const MatchedIdentity& identity) {
  std::string json;
  internal::AppendJsonField(
      "identity", Bounded(identity.name, kMaxLoggedIdentity), &json);
  internal::AppendJsonField("identity_kind", IdentityKindName(identity.kind),
                            &json);
  return json;
}

}  // namespace treezor::broker
