#include "server/token_request.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace treezor::broker {
namespace {

// A secret the tenant's configuration names, with the tenant in its error.
absl::StatusOr<Secret> InTenant(const v1::Tenant& tenant,
                                absl::StatusOr<Secret> secret) {
  if (!secret.ok()) {
    return TenantError(secret.status().code(), tenant.name(),
                       secret.status().message());
  }
  return secret;
}

absl::StatusOr<Grant> ChooseGrant(const v1::Tenant& tenant,
                                  const FetchRequest& request) {
  if (!request.refresh_token.empty()) return Grant::kRefreshToken;
  if (tenant.grant_type().empty() ||
      tenant.grant_type() == "client_credentials") {
    return Grant::kClientCredentials;
  }
  if (tenant.grant_type() == "password") return Grant::kPassword;
  return TenantError(absl::StatusCode::kFailedPrecondition, tenant.name(),
                     absl::StrCat("unsupported grantType \"",
                                  tenant.grant_type(), "\""));
}

}  // namespace

absl::string_view GrantName(Grant grant) {
  switch (grant) {
    case Grant::kClientCredentials:
      return "client_credentials";
    case Grant::kPassword:
      return "password";
    case Grant::kRefreshToken:
      return "refresh_token";
  }
  return "unknown";
}

absl::Status TenantError(absl::StatusCode code, absl::string_view tenant,
                         absl::string_view what) {
  return absl::Status(code, absl::StrCat("tenant ", tenant, ": ", what));
}

absl::StatusOr<TokenRequest> BuildTokenRequest(const v1::Tenant& tenant,
                                               const FetchRequest& request) {
  absl::StatusOr<Grant> grant = ChooseGrant(tenant, request);
  if (!grant.ok()) return grant.status();
  TokenRequest out;
  out.grant = *grant;
  out.params.reserve(6);  // no reallocation: every move wipes its source
  const auto add = [&out](absl::string_view name, Secret value) {
    out.params.push_back(Param{std::string(name), std::move(value)});
  };
  add("grant_type", Secret(GrantName(*grant)));
  add("client_id", Secret(tenant.client_id()));
  if (*grant == Grant::kRefreshToken) {
    out.redactor.Add(request.refresh_token);
    add("refresh_token", Secret(request.refresh_token));
  } else {
    absl::StatusOr<Secret> secret = InTenant(tenant, ReadClientSecret(tenant));
    if (!secret.ok()) return secret.status();
    out.redactor.Add(secret->view());
    add("client_secret", *std::move(secret));
  }
  if (*grant == Grant::kPassword) {
    absl::StatusOr<Secret> username = InTenant(
        tenant, ReadSecretFile("usernameFile", tenant.username_file()));
    if (!username.ok()) return username.status();
    absl::StatusOr<Secret> password = InTenant(
        tenant, ReadSecretFile("passwordFile", tenant.password_file()));
    if (!password.ok()) return password.status();
    out.redactor.Add(password->view());
    add("username", *std::move(username));
    add("password", *std::move(password));
  }
  if (!request.scopes.empty()) {
    add("scope", Secret(request.scopes.ToOAuthString()));
  }
  return out;
}

}  // namespace treezor::broker
