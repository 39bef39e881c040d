// A Treezor access token as the broker holds it. (To name one in logs,
// metrics and errors without revealing it: TokenFingerprint, in
// common/token_digest.h.)
#ifndef TREEZOR_BROKER_SERVER_TOKEN_H_
#define TREEZOR_BROKER_SERVER_TOKEN_H_

#include <string>

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

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_H_
