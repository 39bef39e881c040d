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

}  // namespace

std::string BoundedIdentity(absl::string_view name) {
  return Bounded(name, kMaxLoggedIdentity);
}

RpcAudit::RpcAudit(BrokerMetrics::Rpc rpc, Clock* clock,
                   BrokerMetrics* metrics)
    : rpc_(rpc), clock_(clock), metrics_(metrics), started_(clock->Now()) {}

void RpcAudit::SetCaller(const PeerIdentity& peer) {
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
  caller_names_ = peer.name_count();
  caller_ = Bounded(joined, kMaxLoggedCaller, &caller_cut_);
}

void RpcAudit::SetIdentity(const MatchedIdentity& identity) {
  has_identity_ = true;
  identity_ = {identity.kind, Bounded(identity.name, kMaxLoggedIdentity)};
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

std::vector<LogField> RpcAudit::RequestFields(size_t more) const {
  // Built in place (this runs on every RPC): no initializer-list copies.
  std::vector<LogField> fields;
  fields.reserve(8 + more);
  fields.emplace_back("rpc", kRpcNames[static_cast<int>(rpc_)]);
  fields.emplace_back("caller", caller_);
  if (caller_cut_) fields.emplace_back("caller_names", caller_names_);
  if (has_identity_) {
    fields.emplace_back("identity", identity_.name);
    fields.emplace_back("identity_kind", IdentityKindName(identity_.kind));
  }
  if (has_tenant_) fields.emplace_back("tenant", tenant_);
  if (has_scopes_) fields.emplace_back("scopes", scopes_);
  if (scope_count_ > 0) fields.emplace_back("scope_count", scope_count_);
  return fields;
}

void RpcAudit::Event(absl::string_view event, const CachedToken* token) {
  if (finished_) return;
  std::vector<LogField> fields = RequestFields(3);
  fields.emplace_back("event", event);
  if (token != nullptr) {
    fields.emplace_back("token_fp", token->fingerprint);
    fields.emplace_back("version", token->version);
  }
  Log(LogLevel::kInfo, "audit", fields);
}

grpc::Status RpcAudit::Finish(const absl::Status& outcome) {
  if (!finished_) {
    finished_ = true;
    const absl::Duration latency = clock_->Now() - started_;
    std::vector<LogField> fields = RequestFields(4 + extra_.size());
    fields.emplace_back("outcome", absl::StatusCodeToString(outcome.code()));
    fields.emplace_back("latency_us", absl::ToInt64Microseconds(latency));
    if (!outcome.ok()) {
      // Errors may echo the request (bounded there too); cut again here.
      fields.emplace_back("error", Bounded(outcome.message(), kMaxLoggedError));
    }
    if (!token_fingerprint_.empty()) {
      fields.emplace_back("token_fp", token_fingerprint_);
    }
    for (LogField& f : extra_) fields.push_back(std::move(f));
    Log(LogLevel::kInfo, "audit", fields);
    if (metrics_ != nullptr) metrics_->RecordRpc(rpc_, outcome.code(), latency);
  }
  return ToGrpcStatus(outcome);
}

}  // namespace treezor::broker
