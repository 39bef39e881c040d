// A Treezor access token as the broker holds it, and the one way to name a
// token in logs, metrics and errors without revealing it: its fingerprint.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_H_
#define TREEZOR_BROKER_SERVER_TOKEN_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/time/time.h"

namespace treezor::broker {

struct Token {
  std::string access_token;
  std::string token_type;  // normalised to "Bearer"
  // When the broker received it.
  absl::Time obtained_at = absl::InfinitePast();
  // The earlier of obtained_at + expires_in and the JWT's `exp` claim.
  absl::Time expires_at = absl::InfinitePast();
  // Password grant only; empty otherwise.
  std::string refresh_token;

  absl::Duration lifetime() const { return expires_at - obtained_at; }
};

// Lowercase hex SHA-256 of `token` (what GetTokenRequest.rejected_token_sha256
// carries).
std::string TokenSha256Hex(absl::string_view token);

// First 12 hex digits of the SHA-256: enough to tell tokens apart in a log,
// useless to an attacker.
std::string TokenFingerprint(absl::string_view token);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_H_
