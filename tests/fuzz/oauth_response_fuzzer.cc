// Fuzz target: what Treezor's token endpoint answers (server/oauth_response.h).
// Every input is read both as a token answer and as an OAuth error, as the
// Treezor client does with a body it has not seen before. Invariants, for any
// body:
//  - a parsed token has a non-empty access_token, token_type "Bearer",
//    obtained_at = now < expires_at <= now + 366 days, and expires_at no later
//    than the access token's JWT `exp` when it has one;
//  - a refused answer's message never quotes the access token (it is a
//    secret; only a token_type containing it may show it);
//  - an OAuthError has a non-empty code of at most kMaxOAuthCodeChars bytes, a
//    description of at most kMaxOAuthDescriptionChars bytes, neither with a
//    control character (C0, DEL, C1), and both are valid UTF-8 when the body
//    is (the cut is at a character boundary).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/jwt.h"
#include "server/oauth_response.h"
#include "server/secret_redactor.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/utf8.h"

namespace treezor::broker {
namespace {

// A fixed `now`, as in oauth_response_test.cc: the seeds' JWTs expire after it.
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// C0 controls, DEL, and C1 controls (U+0080..U+009F, bytes C2 80..C2 9F).
bool HasControlCharacter(absl::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < s.size() &&
        static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      return true;
    }
  }
  return false;
}

std::string Shown(absl::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(s), "\" (", s.size(), " bytes)");
}

// The body's string fields `access_token` and `token_type`, read here with the
// same JSON parser, to check what a refusal may quote.
struct RawFields {
  std::string access_token;
  std::string token_type;
};
RawFields ReadRawFields(absl::string_view body) {
  google::protobuf::Struct object;
  RawFields raw;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(body.data(), body.size()), &object)
           .ok()) {
    return raw;
  }
  for (auto [name, out] : {std::pair{"access_token", &raw.access_token},
                           std::pair{"token_type", &raw.token_type}}) {
    const auto it = object.fields().find(name);
    if (it != object.fields().end() && it->second.has_string_value()) {
      *out = it->second.string_value();
    }
  }
  return raw;
}

void CheckTokenResponse(absl::string_view body) {
  const absl::StatusOr<Token> token = ParseTokenResponse(body, kNow);
  if (!token.ok()) {
    TZB_FUZZ_CHECK(token.status().code() == absl::StatusCode::kInvalidArgument,
                   token.status().ToString());
    TZB_FUZZ_CHECK(absl::StartsWith(token.status().message(), "token response: "),
                   token.status().ToString());
    // Short values are too likely to occur in the fixed messages by chance.
    const RawFields raw = ReadRawFields(body);
    if (raw.access_token.size() >= 8 &&
        !absl::StrContains(raw.token_type, raw.access_token)) {
      TZB_FUZZ_CHECK(!absl::StrContains(token.status().message(), raw.access_token),
                     absl::StrCat("the refusal quotes the access token: ",
                                  token.status().ToString()));
    }
    return;
  }
  TZB_FUZZ_CHECK(!token->access_token.empty(), "empty access_token accepted");
  TZB_FUZZ_CHECK(token->token_type == "Bearer", Shown(token->token_type));
  TZB_FUZZ_CHECK(token->obtained_at == kNow,
                 absl::FormatTime(token->obtained_at));
  TZB_FUZZ_CHECK(token->expires_at > kNow,
                 absl::StrCat("expires_at ", absl::FormatTime(token->expires_at),
                              " is not after now"));
  TZB_FUZZ_CHECK(token->expires_at <= kNow + absl::Hours(24 * 366),
                 absl::FormatTime(token->expires_at));
  if (const std::optional<absl::Time> exp = JwtExpiry(token->access_token)) {
    TZB_FUZZ_CHECK(token->expires_at <= *exp,
                   absl::StrCat("expires_at ", absl::FormatTime(token->expires_at),
                                " later than the JWT exp ",
                                absl::FormatTime(*exp)));
  }
}

// The secret the fuzzed request carried: no ordinary word in it, so that
// nothing but an echo of it can contain a piece of it.
constexpr absl::string_view kSecret = "Zq8vX3kP9wLm2R7t";

void CheckOAuthError(absl::string_view body) {
  // A request that carried a secret, so the redaction path runs too; the
  // invariants below hold whatever it redacts.
  static const SecretRedactor* const redactor = [] {
    auto* r = new SecretRedactor;
    r->Add(kSecret);
    return r;
  }();
  const std::optional<OAuthError> error = ParseOAuthError(body, *redactor);
  if (!error.has_value()) return;
  TZB_FUZZ_CHECK(!error->code.empty(), "an OAuthError with an empty code");
  TZB_FUZZ_CHECK(error->code.size() <= kMaxOAuthCodeChars, Shown(error->code));
  TZB_FUZZ_CHECK(error->description.size() <= kMaxOAuthDescriptionChars,
                 Shown(error->description));
  for (const std::string* field : {&error->code, &error->description}) {
    TZB_FUZZ_CHECK(!HasControlCharacter(*field), Shown(*field));
    // No run of SecretRedactor::kMinRun characters of the secret survives.
    for (size_t i = 0; i + SecretRedactor::kMinRun <= kSecret.size(); ++i) {
      TZB_FUZZ_CHECK(
          !absl::StrContains(*field,
                             kSecret.substr(i, SecretRedactor::kMinRun)),
          absl::StrCat("part of the secret in ", Shown(*field)));
    }
    if (fuzz::IsValidUtf8(body)) {
      TZB_FUZZ_CHECK(fuzz::IsValidUtf8(*field),
                     absl::StrCat("a valid UTF-8 body gave ", Shown(*field)));
    }
  }
}

}  // namespace
}  // namespace treezor::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view body(reinterpret_cast<const char*>(data), size);
  treezor::broker::CheckTokenResponse(body);
  treezor::broker::CheckOAuthError(body);
  return 0;
}
