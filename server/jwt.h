// Reads the expiry of a Treezor access token without trusting anything else
// in it.
//
// Treezor's access tokens are JWTs whose payload carries `exp`; TREEZOR.md
// says to keep the earlier of `exp` and now + expires_in. The broker is not
// the token's audience, so the signature is NOT verified and no other claim is
// read: `exp` can only shorten a token's life (see ParseTokenResponse), never
// extend it, so a forged `exp` cannot make the broker hand out a dead token
// for longer than Treezor said.
//
//   std::optional<absl::Time> exp = JwtExpiry(token);  // nullopt: no usable exp
//
// Thread-safety: pure function.
#ifndef TREEZOR_BROKER_SERVER_JWT_H_
#define TREEZOR_BROKER_SERVER_JWT_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace treezor::broker {

// The `exp` claim of `token` if the token looks like a JWT (three
// dot-separated base64url segments, payload a JSON object, padding optional)
// and `exp` is a number of seconds since the epoch in a plausible range
// (after 1970, before year 10000; fractions are truncated). nullopt otherwise
// — an opaque token is not an error.
std::optional<absl::Time> JwtExpiry(absl::string_view token);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_JWT_H_
