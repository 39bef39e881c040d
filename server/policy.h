// Who may get which tokens: the `callers`, `admins` and per-tenant scope
// rules of the config, compiled into lookups.
//
//   absl::StatusOr<Policy> policy = Policy::Create(config);
//   ...
//   absl::StatusOr<std::vector<MatchedIdentity>> caller =
//       policy->MatchCaller(peer);  // peer: PeerIdentityFromAuthContext(...)
//   absl::StatusOr<ScopeSet> scopes = policy->Authorize(*caller, "acme", {});
//
// Identities are typed (peer_identity.h), as in the SPIFFE X.509-SVID rules:
// a config identity with a URI scheme (spiffe://...) matches only a URI SAN;
// any other identity matches a DNS SAN, or the subject CN of a certificate
// that has no SAN at all. A certificate with more than one URI SAN is
// refused outright. Every `callers[]` entry that matches applies and their
// grants add up. Authorization never reveals which tenants exist: an unknown
// tenant and a tenant the caller may not use get byte-identical errors.
//
// Thread-safety: immutable after Create; share it as
// std::shared_ptr<const Policy> so a config reload can swap in a new one.
#ifndef TREEZOR_BROKER_SERVER_POLICY_H_
#define TREEZOR_BROKER_SERVER_POLICY_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/peer_identity.h"
#include "server/scope_set.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

class Policy {
 public:
  // Assumes a config that passed ValidateConfig; still refuses (with
  // INVALID_ARGUMENT) the few inconsistencies that would make lookups wrong.
  static absl::StatusOr<Policy> Create(const v1::BrokerConfig& config);

  // The config identities `peer` matches as a caller (URI SAN first, then
  // DNS SANs in certificate order, then the CN of a SAN-less certificate).
  // Errors (PERMISSION_DENIED):
  //  - "caller certificate has <n> URI SANs; a SPIFFE X.509-SVID has exactly
  //    one" when it has more than one;
  //  - "caller certificate has no identity ..." when it has no usable name;
  //  - "no configured caller matches this certificate (identities: ...)",
  //    naming a few of its names with their kind.
  absl::StatusOr<std::vector<MatchedIdentity>> MatchCaller(
      const PeerIdentity& peer) const;

  // The scope set the caller matched as `caller` may get a token for on
  // `tenant`: `requested_scopes` canonicalised, or the tenant's defaultScopes
  // when empty. Errors:
  //  - PERMISSION_DENIED "no configured caller matches ..." when `caller` is
  //    empty;
  //  - PERMISSION_DENIED `caller may not get tokens for tenant "<t>"`, the
  //    same bytes whether the tenant is unknown or merely not the caller's;
  //  - INVALID_ARGUMENT "scopes[<i>]: ..." for a malformed scope;
  //  - PERMISSION_DENIED naming the first scope that the tenant's
  //    allowedScopes or the caller's scopes do not cover;
  //  - PERMISSION_DENIED "... name the scopes to request" when the set is
  //    empty (no scope parameter, so Treezor would grant its own default
  //    scopes) and the tenant has allowedScopes or the caller has `scopes`:
  //    the empty set is allowed only to an unrestricted caller on a tenant
  //    without allowedScopes.
  absl::StatusOr<ScopeSet> Authorize(
      absl::Span<const MatchedIdentity> caller, absl::string_view tenant,
      absl::Span<const std::string> requested_scopes) const;

  // The canonical scope set for `tenant` regardless of caller (admin use):
  // defaults when empty, checked against the tenant's allowedScopes (an
  // empty set on a tenant with allowedScopes is PERMISSION_DENIED).
  // NOT_FOUND for an unknown tenant (admins may know tenant names).
  absl::StatusOr<ScopeSet> ResolveScopes(
      absl::string_view tenant,
      absl::Span<const std::string> requested_scopes) const;

  // The `admins[]` identity `peer` matches (same typed rules and the same
  // URI SAN refusal as MatchCaller); PERMISSION_DENIED "no configured admin
  // matches this certificate (identities: ...)" otherwise.
  absl::StatusOr<MatchedIdentity> MatchAdmin(const PeerIdentity& peer) const;

  // Each tenant's default scope set, in config order (what the broker fetches
  // at start-up). A tenant with allowedScopes and no defaultScopes has no
  // default set and is left out: it is never fetched without a scope.
  std::vector<std::pair<std::string, ScopeSet>> DefaultScopeSets() const;

 private:
  struct TenantRules {
    ScopeSet default_scopes;
    ScopeSet allowed_scopes;  // empty: any
  };
  // What one identity may do on one tenant (several callers[] entries with
  // the same identity are merged).
  struct Grant {
    bool any_scope = false;  // an entry with no `scopes`
    ScopeSet scopes;         // the union of the entries' scopes
  };
  using TenantGrants = absl::flat_hash_map<std::string, Grant>;

  Policy() = default;

  // The names of `peer` that `is_listed` accepts, typed; the errors of
  // MatchCaller, with `role` ("caller" or "admin") in the no-match one.
  template <typename IsListed>
  static absl::StatusOr<std::vector<MatchedIdentity>> Match(
      const PeerIdentity& peer, absl::string_view role,
      const IsListed& is_listed);

  static absl::StatusOr<ScopeSet> TenantScopes(
      const TenantRules& rules, absl::string_view tenant,
      absl::Span<const std::string> requested_scopes);

  std::vector<std::string> tenant_order_;
  absl::flat_hash_map<std::string, TenantRules> tenants_;
  absl::flat_hash_map<std::string, TenantGrants> callers_;  // by identity
  absl::flat_hash_set<std::string> admins_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_POLICY_H_
