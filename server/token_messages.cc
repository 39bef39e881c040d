#include "server/token_messages.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "server/scope_set.h"

namespace treezor::broker {

absl::Status ValidateTenantAndScopes(
    const std::string& tenant,
    const google::protobuf::RepeatedPtrField<std::string>& scopes) {
  if (tenant.empty()) {
    return absl::InvalidArgumentError("tenant: required");
  }
  if (tenant.size() > kMaxRequestTenantLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tenant: longer than ", kMaxRequestTenantLength, " characters"));
  }
  if (scopes.size() > kMaxRequestScopes) {
    return absl::InvalidArgumentError(
        absl::StrCat("scopes: more than ", kMaxRequestScopes, " scopes"));
  }
  for (int i = 0; i < scopes.size(); ++i) {
    if (absl::Status s =
            ValidateScope(scopes[i], absl::StrCat("scopes[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateGetTokenRequest(const v1::GetTokenRequest& request) {
  if (absl::Status s =
          ValidateTenantAndScopes(request.tenant(), request.scopes());
      !s.ok()) {
    return s;
  }
  if (request.has_min_ttl()) {
    const auto& d = request.min_ttl();
    if (d.seconds() < 0 || d.nanos() < 0) {
      return absl::InvalidArgumentError("min_ttl: must not be negative");
    }
    if (d.nanos() > 999'999'999 || d.seconds() > 315'576'000'000) {
      return absl::InvalidArgumentError("min_ttl: not a valid duration");
    }
  }
  const std::string& sha = request.rejected_token_sha256();
  if (!sha.empty()) {
    const bool hex = sha.size() == 64 &&
                     std::all_of(sha.begin(), sha.end(), [](char c) {
                       return absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
                              (c >= 'a' && c <= 'f');
                     });
    if (!hex) {
      return absl::InvalidArgumentError(
          "rejected_token_sha256: must be 64 lowercase hex digits (SHA-256)");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateWatchTokenRequest(const v1::WatchTokenRequest& request) {
  return ValidateTenantAndScopes(request.tenant(), request.scopes());
}

void FillResponse(const CacheKey& key, const CachedToken& token,
                  v1::GetTokenResponse* response) {
  response->set_access_token(token.token.access_token);
  response->set_token_type("Bearer");
  ToProtoTimestamp(token.token.expires_at, response->mutable_expires_at());
  for (const std::string& s : key.scopes.scopes()) response->add_scopes(s);
  response->set_tenant(key.tenant);
}

}  // namespace treezor::broker
