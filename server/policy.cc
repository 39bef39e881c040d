#include "server/policy.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/quote.h"

namespace treezor::broker {
namespace {

// Caller-supplied strings echoed in an error are cut short at this many
// bytes, so a huge request does not make a huge log line.
constexpr size_t kMaxEcho = 80;

// A no-match error names at most this many of the certificate's names.
constexpr size_t kMaxEchoedNames = 3;

// The names of `peer` that can identify it, typed: its URI and DNS SANs, or
// its CN when it has no SAN.
std::vector<MatchedIdentity> Candidates(const PeerIdentity& peer) {
  std::vector<MatchedIdentity> names;
  for (const std::string& uri : peer.uri_sans) {
    names.push_back({IdentityKind::kUri, uri});
  }
  for (const std::string& dns : peer.dns_sans) {
    names.push_back({IdentityKind::kDns, dns});
  }
  if (!peer.has_san() && !peer.common_name.empty()) {
    names.push_back({IdentityKind::kCn, peer.common_name});
  }
  return names;
}

// `uri "a", dns "b", dns "c" and 47 more`: bounded whatever the certificate.
std::string DescribeNames(absl::Span<const MatchedIdentity> names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMaxEchoedNames; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", IdentityKindName(names[i].kind),
                    " ", Quote(names[i].name, kMaxEcho));
  }
  if (names.size() > kMaxEchoedNames) {
    absl::StrAppend(&out, " and ", names.size() - kMaxEchoedNames, " more");
  }
  return out;
}

// A config identity applies to a certificate name of the right kind only.
bool KindFits(IdentityKind kind, absl::string_view config_identity) {
  return (kind == IdentityKind::kUri) == IsUriIdentity(config_identity);
}

}  // namespace

absl::StatusOr<Policy> Policy::Create(const v1::BrokerConfig& config) {
  Policy policy;
  for (const v1::Tenant& t : config.tenants()) {
    auto [it, inserted] = policy.tenants_.try_emplace(
        t.name(), TenantRules{ScopeSet::FromList(t.default_scopes()),
                              ScopeSet::FromList(t.allowed_scopes())});
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("tenants: duplicate name ", Quote(t.name(), kMaxEcho)));
    }
    policy.tenant_order_.push_back(t.name());
  }
  for (int i = 0; i < config.callers_size(); ++i) {
    const v1::Caller& c = config.callers(i);
    TenantGrants& grants = policy.callers_[c.identity()];
    const ScopeSet scopes = ScopeSet::FromList(c.scopes());
    for (const std::string& tenant : c.tenants()) {
      if (!policy.tenants_.contains(tenant)) {
        return absl::InvalidArgumentError(
            absl::StrCat("callers[", i, "].tenants: no tenant is named ",
                         Quote(tenant, kMaxEcho)));
      }
      Grant& grant = grants[tenant];
      if (scopes.empty()) {
        grant.any_scope = true;
      } else {
        std::vector<std::string> merged = grant.scopes.scopes();
        merged.insert(merged.end(), scopes.scopes().begin(),
                      scopes.scopes().end());
        grant.scopes = ScopeSet::FromList(merged);
      }
    }
  }
  for (const v1::Admin& a : config.admins())
    policy.admins_.insert(a.identity());
  return policy;
}

absl::StatusOr<ScopeSet> Policy::TenantScopes(
    const TenantRules& rules, absl::string_view tenant,
    absl::Span<const std::string> requested_scopes) {
  for (size_t i = 0; i < requested_scopes.size(); ++i) {
    if (absl::Status s =
            ValidateScope(requested_scopes[i], absl::StrCat("scopes[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  ScopeSet scopes = requested_scopes.empty()
                        ? rules.default_scopes
                        : ScopeSet::FromList(requested_scopes);
  if (scopes.empty() && !rules.allowed_scopes.empty()) {
    // No scope parameter would get Treezor's own defaults, which
    // allowedScopes does not cover.
    return absl::PermissionDeniedError(absl::StrCat(
        "tenant ", Quote(tenant, kMaxEcho),
        " has allowedScopes and no defaultScopes: name the scopes to request"));
  }
  for (const std::string& scope : scopes.scopes()) {
    if (!rules.allowed_scopes.empty() && !rules.allowed_scopes.Contains(scope)) {
      return absl::PermissionDeniedError(
          absl::StrCat("scope ", Quote(scope, kMaxEcho),
                       " is not allowed on tenant ", Quote(tenant, kMaxEcho)));
    }
  }
  return scopes;
}

absl::StatusOr<ScopeSet> Policy::ResolveScopes(
    absl::string_view tenant,
    absl::Span<const std::string> requested_scopes) const {
  auto rules = tenants_.find(tenant);
  if (rules == tenants_.end()) {
    return absl::NotFoundError(
        absl::StrCat("tenant ", Quote(tenant, kMaxEcho), " is not configured"));
  }
  return TenantScopes(rules->second, tenant, requested_scopes);
}

template <typename IsListed>
absl::StatusOr<std::vector<MatchedIdentity>> Policy::Match(
    const PeerIdentity& peer, absl::string_view role,
    const IsListed& is_listed) {
  if (peer.uri_sans.size() > 1) {
    return absl::PermissionDeniedError(absl::StrCat(
        "caller certificate has ", peer.uri_sans.size(),
        " URI SANs; a SPIFFE X.509-SVID has exactly one"));
  }
  const std::vector<MatchedIdentity> candidates = Candidates(peer);
  if (candidates.empty()) {
    return absl::PermissionDeniedError(
        "caller certificate has no identity (no URI SAN or DNS SAN, and no "
        "subject CN in a certificate without SANs)");
  }
  std::vector<MatchedIdentity> matched;
  for (const MatchedIdentity& name : candidates) {
    if (!KindFits(name.kind, name.name) || !is_listed(name.name)) continue;
    if (std::find(matched.begin(), matched.end(), name) != matched.end()) {
      continue;
    }
    matched.push_back(name);
  }
  if (matched.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("no configured ", role,
                     " matches this certificate (identities: ",
                     DescribeNames(candidates), ")"));
  }
  return matched;
}

absl::StatusOr<std::vector<MatchedIdentity>> Policy::MatchCaller(
    const PeerIdentity& peer) const {
  return Match(peer, "caller", [this](const std::string& name) {
    return callers_.contains(name);
  });
}

absl::StatusOr<MatchedIdentity> Policy::MatchAdmin(
    const PeerIdentity& peer) const {
  absl::StatusOr<std::vector<MatchedIdentity>> matched =
      Match(peer, "admin", [this](const std::string& name) {
        return admins_.contains(name);
      });
  if (!matched.ok()) return matched.status();
  return matched->front();
}

absl::StatusOr<ScopeSet> Policy::Authorize(
    absl::Span<const MatchedIdentity> caller, absl::string_view tenant,
    absl::Span<const std::string> requested_scopes) const {
  // The union of every matching entry's grants on `tenant`.
  bool known_caller = false;
  bool tenant_granted = false;
  bool any_scope = false;
  std::vector<std::string> caller_scopes;
  for (const MatchedIdentity& identity : caller) {
    auto grants = callers_.find(identity.name);
    if (grants == callers_.end()) continue;
    known_caller = true;
    auto g = grants->second.find(tenant);
    if (g == grants->second.end()) continue;
    tenant_granted = true;
    any_scope = any_scope || g->second.any_scope;
    caller_scopes.insert(caller_scopes.end(), g->second.scopes.scopes().begin(),
                         g->second.scopes.scopes().end());
  }
  if (!known_caller) {
    return absl::PermissionDeniedError(
        "no configured caller matches this certificate");
  }
  auto rules = tenants_.find(tenant);
  if (!tenant_granted || rules == tenants_.end()) {
    // Identical bytes whether the tenant exists or not.
    return absl::PermissionDeniedError(absl::StrCat(
        "caller may not get tokens for tenant ", Quote(tenant, kMaxEcho)));
  }
  const ScopeSet caller_allowed = ScopeSet::FromList(caller_scopes);
  absl::StatusOr<ScopeSet> scopes =
      TenantScopes(rules->second, tenant, requested_scopes);
  if (!scopes.ok()) return scopes.status();
  if (scopes->empty() && !any_scope) {
    // The empty set is a set: Treezor would grant its own default scopes,
    // which the caller's scopes do not cover.
    return absl::PermissionDeniedError(absl::StrCat(
        "caller may get only its listed scopes on tenant ",
        Quote(tenant, kMaxEcho),
        " and the tenant has no defaultScopes: name the scopes to request"));
  }
  for (const std::string& scope : scopes->scopes()) {
    if (!any_scope && !caller_allowed.Contains(scope)) {
      return absl::PermissionDeniedError(
          absl::StrCat("caller may not request scope ", Quote(scope, kMaxEcho),
                       " on tenant ", Quote(tenant, kMaxEcho)));
    }
  }
  return scopes;
}

std::vector<std::pair<std::string, ScopeSet>> Policy::DefaultScopeSets() const {
  std::vector<std::pair<std::string, ScopeSet>> result;
  result.reserve(tenant_order_.size());
  for (const std::string& name : tenant_order_) {
    const TenantRules& rules = tenants_.at(name);
    // allowedScopes and no defaultScopes: there is no default set.
    if (rules.default_scopes.empty() && !rules.allowed_scopes.empty()) continue;
    result.emplace_back(name, rules.default_scopes);
  }
  return result;
}

}  // namespace treezor::broker
