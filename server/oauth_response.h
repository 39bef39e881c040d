// Pure parsing of what Treezor's token endpoint answers: a token on success,
// an OAuth error otherwise. No I/O, no clock (the caller passes `now`), so
// every shape is unit-tested (tests/server/oauth_response_test.cc).
//
// Bodies are parsed with protobuf's JSON parser into google.protobuf.Struct,
// the project's one JSON parser. Error messages name the offending field and
// never quote the body: it carries the token (and a hostile or careless
// server may put anything in any field).
//
// Thread-safety: pure functions.
#ifndef TREEZOR_BROKER_SERVER_OAUTH_RESPONSE_H_
#define TREEZOR_BROKER_SERVER_OAUTH_RESPONSE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/secret_redactor.h"
#include "server/token.h"

namespace treezor::broker {

// A successful answer (RFC 6749 §5.1):
//   {"token_type":"Bearer","expires_in":3600,"access_token":"<JWT>",
//    "refresh_token":"<optional>"}
// Requires token_type Bearer (any case; normalised to "Bearer"), expires_in a
// positive number or numeric string, and a non-empty access_token.
// obtained_at = now; expires_at = the earlier of now + expires_in and the
// access token's JWT `exp` (JwtExpiry), and it must be after `now` — a token
// that is already dead is refused rather than handed out. refresh_token is
// kept when present.
//
// Errors are INVALID_ARGUMENT "token response: <what is wrong>", e.g.
// "token response: expires_in missing or not positive". They quote nothing
// the server sent.
absl::StatusOr<Token> ParseTokenResponse(absl::string_view body,
                                         absl::Time now);

// An OAuth error answer, in either shape Treezor may use:
//  - RFC 6749 §5.2: {"error":"invalid_client","error_description":"..."}
//  - Treezor's own: {"errors":[{"type":"invalid_request","code":"...",
//                               "message":"...","docUrl":"..."}]}
//    (the first entry counts; code = type, or code when type is empty;
//    description = message).
// Both fields are safe to log: in this order, the request's secrets are
// redacted (`redactor`: before anything else, so that no cut or replaced
// character can hide a secret from it), control characters are replaced,
// secrets are redacted again (a replaced character may have joined two
// pieces of one), and the text is bounded — `code` to kMaxOAuthCodeChars,
// `description` to kMaxOAuthDescriptionChars (cut at a UTF-8 character
// boundary, "..." appended) — and checked once more. An RFC 6749 §5.2 code
// (IsRfc6749ErrorCode) is kept as is: it is a public constant, not a trace
// of a secret.
//
// Only `code` is meant for callers (with the HTTP status); `description` is
// free text from the server, for the request's log line only.
struct OAuthError {
  std::string code;
  std::string description;
};
inline constexpr size_t kMaxOAuthCodeChars = 64;
inline constexpr size_t kMaxOAuthDescriptionChars = 200;

// nullopt when `body` is not JSON or has neither shape (or an empty code).
std::optional<OAuthError> ParseOAuthError(absl::string_view body,
                                          const SecretRedactor& redactor);

// One of RFC 6749 §5.2's error codes: invalid_request, invalid_client,
// invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope.
bool IsRfc6749ErrorCode(absl::string_view code);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_OAUTH_RESPONSE_H_
