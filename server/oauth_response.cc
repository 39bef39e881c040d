#include "server/oauth_response.h"

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/jwt.h"

namespace treezor::broker {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// No access token lives this long; a larger expires_in is a broken answer,
// not a token to cache forever.
constexpr absl::Duration kMaxExpiresIn = absl::Hours(24 * 366);

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("token response: ", what));
}

// The parser's own messages quote the text around the error, which may be
// the token: callers only learn whether parsing worked.
std::optional<Struct> ParseJsonObject(absl::string_view body) {
  Struct object;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(body.data(), body.size()), &object)
           .ok()) {
    return std::nullopt;
  }
  return object;
}

const Value* Field(const Struct& object, const std::string& name) {
  const auto it = object.fields().find(name);
  return it == object.fields().end() ? nullptr : &it->second;
}

// The string value of `name`, or "" when absent or not a string.
std::string StringField(const Struct& object, const std::string& name) {
  const Value* v = Field(object, name);
  return v != nullptr && v->has_string_value() ? v->string_value()
                                               : std::string();
}

// Seconds from a JSON number or a numeric string; nullopt otherwise.
std::optional<double> NumberOrNumericString(const Value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->has_number_value()) return v->number_value();
  double parsed = 0;
  if (v->has_string_value() && absl::SimpleAtod(v->string_value(), &parsed)) {
    return parsed;
  }
  return std::nullopt;
}

absl::StatusOr<absl::Duration> ExpiresIn(const Struct& object) {
  const std::optional<double> seconds =
      NumberOrNumericString(Field(object, "expires_in"));
  if (!seconds.has_value() || !std::isfinite(*seconds) || *seconds <= 0) {
    return Invalid("expires_in missing or not positive");
  }
  const absl::Duration expires_in = absl::Seconds(*seconds);
  if (expires_in > kMaxExpiresIn) {
    return Invalid("expires_in larger than one year");
  }
  return expires_in;
}

// Replaces control characters (C0, DEL and C1: a description must not be
// able to forge log lines or terminal escapes) with spaces, and trims.
std::string WithoutControlCharacters(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x20 || c == 0x7f) {
      out.push_back(' ');
    } else if (c == 0xc2 && i + 1 < in.size() &&
               static_cast<unsigned char>(in[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(in[i + 1]) <= 0x9f) {
      out.push_back(' ');  // U+0080..U+009F
      ++i;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  absl::StripAsciiWhitespace(&out);
  return out;
}

// At most `max_chars` bytes, without splitting a UTF-8 character; "..." ends
// a shortened text.
std::string Bounded(std::string text, size_t max_chars) {
  if (text.size() <= max_chars) return text;
  size_t cut = max_chars > 3 ? max_chars - 3 : 0;  // room for "..."
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
    --cut;  // continuation byte: back to the start of the character
  }
  text.resize(cut);
  text.append("...");
  return text;
}

// Server-sent text made safe to log; the order is the point (see the
// header).
std::string SafeText(absl::string_view raw, const SecretRedactor& redactor,
                     size_t max_chars) {
  std::string text = redactor.Redact(raw);
  text = redactor.Redact(WithoutControlCharacters(text));
  // The cut cannot reveal anything new, but "..." could complete a run of
  // a secret that happens to end in dots.
  return redactor.Redact(Bounded(std::move(text), max_chars));
}

// Treezor's `code` may be a string or a number.
std::string CodeAsText(const Value* v) {
  if (v == nullptr) return "";
  if (v->has_string_value()) return v->string_value();
  if (v->has_number_value() && std::isfinite(v->number_value())) {
    return absl::StrCat(v->number_value());
  }
  return "";
}

std::optional<OAuthError> FromRfc6749Shape(const Struct& object) {
  OAuthError error{StringField(object, "error"),
                   StringField(object, "error_description")};
  if (error.code.empty()) return std::nullopt;
  return error;
}

std::optional<OAuthError> FromTreezorShape(const Struct& object) {
  const Value* errors = Field(object, "errors");
  if (errors == nullptr || !errors->has_list_value() ||
      errors->list_value().values_size() == 0 ||
      !errors->list_value().values(0).has_struct_value()) {
    return std::nullopt;
  }
  const Struct& first = errors->list_value().values(0).struct_value();
  OAuthError error{StringField(first, "type"), StringField(first, "message")};
  if (error.code.empty()) error.code = CodeAsText(Field(first, "code"));
  if (error.code.empty()) return std::nullopt;
  return error;
}

}  // namespace

absl::StatusOr<Token> ParseTokenResponse(absl::string_view body,
                                         absl::Time now) {
  if (body.empty()) return Invalid("empty body");
  const std::optional<Struct> object = ParseJsonObject(body);
  if (!object.has_value()) return Invalid("body is not a JSON object");

  const Value* token_type = Field(*object, "token_type");
  if (token_type == nullptr || !token_type->has_string_value()) {
    return Invalid("token_type missing");
  }
  if (!absl::EqualsIgnoreCase(token_type->string_value(), "bearer")) {
    return Invalid("token_type is not Bearer");
  }
  absl::StatusOr<absl::Duration> expires_in = ExpiresIn(*object);
  if (!expires_in.ok()) return expires_in.status();

  Token token;
  token.access_token = StringField(*object, "access_token");
  if (token.access_token.empty()) return Invalid("access_token missing or empty");
  const Value* refresh = Field(*object, "refresh_token");
  if (refresh != nullptr && !refresh->has_null_value()) {
    if (!refresh->has_string_value()) {
      return Invalid("refresh_token is not a string");
    }
    token.refresh_token = refresh->string_value();
  }
  token.token_type = "Bearer";
  token.obtained_at = now;
  token.expires_at = now + *expires_in;
  if (const std::optional<absl::Time> exp = JwtExpiry(token.access_token);
      exp.has_value() && *exp < token.expires_at) {
    token.expires_at = *exp;
  }
  if (token.expires_at <= now) {
    return Invalid("access_token already expired (JWT exp not after now)");
  }
  return token;
}

std::optional<OAuthError> ParseOAuthError(absl::string_view body,
                                          const SecretRedactor& redactor) {
  const std::optional<Struct> object = ParseJsonObject(body);
  if (!object.has_value()) return std::nullopt;
  std::optional<OAuthError> error = FromRfc6749Shape(*object);
  if (!error.has_value()) error = FromTreezorShape(*object);
  if (!error.has_value()) return std::nullopt;
  if (!IsRfc6749ErrorCode(error->code)) {
    error->code = SafeText(error->code, redactor, kMaxOAuthCodeChars);
  }
  error->description =
      SafeText(error->description, redactor, kMaxOAuthDescriptionChars);
  if (error->code.empty()) return std::nullopt;
  return error;
}

bool IsRfc6749ErrorCode(absl::string_view code) {
  static constexpr absl::string_view kCodes[] = {
      "invalid_request",     "invalid_client",         "invalid_grant",
      "unauthorized_client", "unsupported_grant_type", "invalid_scope"};
  for (absl::string_view known : kCodes) {
    if (code == known) return true;
  }
  return false;
}

}  // namespace treezor::broker
