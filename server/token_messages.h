// The TokenService's messages: the syntax checks a request must pass before
// any policy is consulted, and the response built from a cached token.
//
//   if (absl::Status s = ValidateGetTokenRequest(*request); !s.ok()) ...
//   FillResponse(key, *token, response);
//
// A malformed request is INVALID_ARGUMENT naming the field, whoever the
// caller is.
//
// Thread-safety: pure functions.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_MESSAGES_H_
#define TREEZOR_BROKER_SERVER_TOKEN_MESSAGES_H_

#include <string>

#include "absl/status/status.h"
#include "server/token_cache.h"
#include "treezor/broker/v1/token_service.pb.h"

namespace treezor::broker {

// Longest tenant name a request may carry; longest list of scopes.
inline constexpr size_t kMaxRequestTenantLength = 128;
inline constexpr int kMaxRequestScopes = 32;

absl::Status ValidateTenantAndScopes(
    const std::string& tenant,
    const google::protobuf::RepeatedPtrField<std::string>& scopes);
absl::Status ValidateGetTokenRequest(const v1::GetTokenRequest& request);
absl::Status ValidateWatchTokenRequest(const v1::WatchTokenRequest& request);

// Fills `response` from a cached token.
void FillResponse(const CacheKey& key, const CachedToken& token,
                  v1::GetTokenResponse* response);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_MESSAGES_H_
