// How a token is named without revealing it, the same way by the broker and
// its clients: the lowercase hex SHA-256 that
// GetTokenRequest.rejected_token_sha256 carries, and the 12-digit fingerprint
// that logs, metrics and errors show.
//
//   TokenSha256Hex(jwt);    // "3f2a9c01b7e4...", 64 digits
//   TokenFingerprint(jwt);  // "3f2a9c01b7e4"
#ifndef TREEZOR_COMMON_TOKEN_DIGEST_H_
#define TREEZOR_COMMON_TOKEN_DIGEST_H_

#include <string>

#include "absl/strings/string_view.h"

namespace treezor {

std::string TokenSha256Hex(absl::string_view token);

// First 12 hex digits of TokenSha256Hex: enough to tell tokens apart in a
// log line, useless to an attacker.
std::string TokenFingerprint(absl::string_view token);

}  // namespace treezor

#endif  // TREEZOR_COMMON_TOKEN_DIGEST_H_
