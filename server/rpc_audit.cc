#include "server/rpc_audit.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "common/grpc_status.h"

namespace treezor::broker {
namespace {

// The RPC names of the audit line, indexed like BrokerMetrics::Rpc.
constexpr absl::string_view kRpcNames[] = {
    "GetToken", "WatchToken", "ListTokens", "RefreshToken", "ReloadConfig"};
static_assert(std::size(kRpcNames) ==
              static_cast<size_t>(BrokerMetrics::Rpc::kCount));

// Longer tenants are refused by validation anyway; the log line is cut here.
constexpr size_t kMaxLoggedTenant = 128;
// The certificate's names, joined, are cut here (their count is logged
// then); a matched identity is a config string, cut alike for safety.
constexpr size_t kMaxLoggedCaller = 256;
constexpr size_t kMaxLoggedIdentity = 128;

// `s` cut to `max` bytes, "..." marking the cut.
std::string Bounded(absl::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  return absl::StrCat(s.substr(0, max), "...");
}

}  // namespace

RpcAudit::RpcAudit(BrokerMetrics::Rpc rpc, Clock* clock,
                   BrokerMetrics* metrics)
    : rpc_(rpc), clock_(clock), metrics_(metrics), started_(clock->Now()) {}

void RpcAudit::SetCaller(const PeerIdentity& peer) {
  caller_.clear();
  caller_names_ = peer.name_count();
  caller_cut_ = false;
  auto add = [this](absl::string_view kind, absl::string_view name) {
    if (caller_cut_) return;
    const std::string entry =
        absl::StrCat(caller_.empty() ? "" : ",", kind, ":", name);
    if (caller_.size() + entry.size() > kMaxLoggedCaller) {
      caller_cut_ = true;
      caller_ = Bounded(absl::StrCat(caller_, entry), kMaxLoggedCaller);
      return;
    }
    caller_ += entry;
  };
  for (const std::string& uri : peer.uri_sans) add("uri", uri);
  for (const std::string& dns : peer.dns_sans) add("dns", dns);
  if (!peer.common_name.empty()) add("cn", peer.common_name);
}

void RpcAudit::SetIdentity(const MatchedIdentity& identity) {
  has_identity_ = true;
  identity_ = {identity.kind, Bounded(identity.name, kMaxLoggedIdentity)};
}

void RpcAudit::SetTenant(absl::string_view tenant) {
  has_tenant_ = true;
  tenant_ = std::string(tenant.substr(0, kMaxLoggedTenant));
}

void RpcAudit::SetScopes(absl::string_view scopes) {
  has_scopes_ = true;
  scopes_ = std::string(scopes);
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
    if (!outcome.ok()) fields.emplace_back("error", outcome.message());
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
