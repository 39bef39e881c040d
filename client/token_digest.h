// How a client names a Treezor token without revealing it, matching the
// broker: the lowercase hex SHA-256 that GetTokenRequest.rejected_token_sha256
// carries, and the 12-digit fingerprint the broker's audit lines show.
//
//   TokenSha256Hex(jwt);    // "3f2a9c01b7e4...", 64 digits
//   TokenFingerprint(jwt);  // "3f2a9c01b7e4"
//
// Kept for existing users of treezor::client::TokenSha256Hex and
// TokenFingerprint: both are common/token_digest.h's, shared with the broker.
#ifndef TREEZOR_BROKER_CLIENT_TOKEN_DIGEST_H_
#define TREEZOR_BROKER_CLIENT_TOKEN_DIGEST_H_

#include "common/token_digest.h"

namespace treezor::client {

using ::treezor::TokenFingerprint;
using ::treezor::TokenSha256Hex;

}  // namespace treezor::client

#endif  // TREEZOR_BROKER_CLIENT_TOKEN_DIGEST_H_
