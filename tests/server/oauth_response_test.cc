#include "server/oauth_response.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::treezor::broker::testing::StatusIs;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
constexpr char kOpaqueToken[] = "opaque-access-token-value";

std::string JwtExpiringAt(absl::Time exp) {
  return absl::StrCat(
      absl::WebSafeBase64Escape(R"({"alg":"RS256"})"), ".",
      absl::WebSafeBase64Escape(
          absl::StrCat(R"({"scope":["admin"],"exp":)", absl::ToUnixSeconds(exp),
                       "}")),
      ".signature");
}

std::string Body(absl::string_view access_token,
                 absl::string_view extra = R"("token_type":"Bearer","expires_in":3600)") {
  return absl::StrCat(R"({"access_token":")", access_token, R"(",)", extra,
                      "}");
}

// --- ParseTokenResponse ----------------------------------------------------

TEST(ParseTokenResponse, AcceptsTheDocumentedAnswer) {
  ASSERT_OK_AND_ASSIGN(Token token, ParseTokenResponse(Body(kOpaqueToken), kNow));
  EXPECT_EQ(token.access_token, kOpaqueToken);
  EXPECT_EQ(token.token_type, "Bearer");
  EXPECT_EQ(token.obtained_at, kNow);
  EXPECT_EQ(token.expires_at, kNow + absl::Hours(1));
  EXPECT_EQ(token.refresh_token, "");
}

TEST(ParseTokenResponse, BearerIsCaseInsensitiveAndNormalised) {
  for (const char* type : {"bearer", "BEARER", "bEaReR"}) {
    ASSERT_OK_AND_ASSIGN(
        Token token,
        ParseTokenResponse(
            Body(kOpaqueToken, absl::StrCat(R"("token_type":")", type,
                                            R"(","expires_in":3600)")),
            kNow));
    EXPECT_EQ(token.token_type, "Bearer");
  }
}

TEST(ParseTokenResponse, ExpiresInMayBeANumericString) {
  ASSERT_OK_AND_ASSIGN(
      Token token,
      ParseTokenResponse(
          Body(kOpaqueToken, R"("token_type":"Bearer","expires_in":"1800")"),
          kNow));
  EXPECT_EQ(token.expires_at, kNow + absl::Minutes(30));
}

TEST(ParseTokenResponse, KeepsTheRefreshToken) {
  ASSERT_OK_AND_ASSIGN(
      Token token,
      ParseTokenResponse(
          Body(kOpaqueToken,
               R"("token_type":"Bearer","expires_in":3600,"refresh_token":"r1")"),
          kNow));
  EXPECT_EQ(token.refresh_token, "r1");
}

TEST(ParseTokenResponse, JwtExpEarlierThanExpiresInWins) {
  const absl::Time exp = kNow + absl::Minutes(10);
  ASSERT_OK_AND_ASSIGN(Token token,
                       ParseTokenResponse(Body(JwtExpiringAt(exp)), kNow));
  EXPECT_EQ(token.expires_at, exp);
}

TEST(ParseTokenResponse, ExpiresInEarlierThanJwtExpWins) {
  ASSERT_OK_AND_ASSIGN(
      Token token,
      ParseTokenResponse(Body(JwtExpiringAt(kNow + absl::Hours(5))), kNow));
  EXPECT_EQ(token.expires_at, kNow + absl::Hours(1));
}

TEST(ParseTokenResponse, RefusesATokenWhoseJwtHasAlreadyExpired) {
  const std::string jwt = JwtExpiringAt(kNow - absl::Seconds(1));
  EXPECT_THAT(ParseTokenResponse(Body(jwt), kNow),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("already expired"), Not(HasSubstr(jwt)))));
}

struct BadShape {
  const char* name;
  std::string body;
  const char* error;
};

class ParseTokenResponseBadShape : public ::testing::TestWithParam<BadShape> {};

TEST_P(ParseTokenResponseBadShape, NamesTheProblemWithoutQuotingTheToken) {
  EXPECT_THAT(
      ParseTokenResponse(GetParam().body, kNow),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(absl::StrCat("token response: ", GetParam().error)),
                     Not(HasSubstr(kOpaqueToken)))));
}

INSTANTIATE_TEST_SUITE_P(
    AllShapes, ParseTokenResponseBadShape,
    ::testing::Values(
        BadShape{"EmptyBody", "", "empty body"},
        BadShape{"NotJson", absl::StrCat("access_token=", kOpaqueToken),
                 "body is not a JSON object"},
        BadShape{"TruncatedJson", Body(kOpaqueToken).substr(0, 40),
                 "body is not a JSON object"},
        BadShape{"JsonArray", absl::StrCat(R"([")", kOpaqueToken, R"("])"),
                 "body is not a JSON object"},
        BadShape{"NoTokenType", Body(kOpaqueToken, R"("expires_in":3600)"),
                 "token_type missing"},
        BadShape{"MacTokenType",
                 Body(kOpaqueToken, R"("token_type":"mac","expires_in":3600)"),
                 "token_type is not Bearer"},
        BadShape{"NoExpiresIn", Body(kOpaqueToken, R"("token_type":"Bearer")"),
                 "expires_in missing or not positive"},
        BadShape{"ZeroExpiresIn",
                 Body(kOpaqueToken, R"("token_type":"Bearer","expires_in":0)"),
                 "expires_in missing or not positive"},
        BadShape{"NegativeExpiresIn",
                 Body(kOpaqueToken, R"("token_type":"Bearer","expires_in":-1)"),
                 "expires_in missing or not positive"},
        BadShape{"NonNumericExpiresIn",
                 Body(kOpaqueToken,
                      R"("token_type":"Bearer","expires_in":"soon")"),
                 "expires_in missing or not positive"},
        BadShape{"BooleanExpiresIn",
                 Body(kOpaqueToken, R"("token_type":"Bearer","expires_in":true)"),
                 "expires_in missing or not positive"},
        BadShape{"AbsurdExpiresIn",
                 Body(kOpaqueToken,
                      R"("token_type":"Bearer","expires_in":1e12)"),
                 "expires_in larger than one year"},
        BadShape{"NoAccessToken",
                 R"({"token_type":"Bearer","expires_in":3600})",
                 "access_token missing or empty"},
        BadShape{"EmptyAccessToken", Body(""), "access_token missing or empty"},
        BadShape{"NumericAccessToken",
                 R"({"access_token":42,"token_type":"Bearer","expires_in":3600})",
                 "access_token missing or empty"},
        BadShape{"NumericRefreshToken",
                 Body(kOpaqueToken,
                      R"("token_type":"Bearer","expires_in":3600,"refresh_token":7)"),
                 "refresh_token is not a string"}),
    [](const ::testing::TestParamInfo<BadShape>& info) {
      return info.param.name;
    });

// --- ParseOAuthError -------------------------------------------------------

// No secret was sent: nothing to redact.
std::optional<OAuthError> ParseOAuthError(absl::string_view body) {
  return ParseOAuthError(body, SecretRedactor());
}

MATCHER_P2(IsOAuthError, code, description, "") {
  return arg.code == code && arg.description == description;
}

TEST(ParseOAuthError, ReadsTheRfc6749Shape) {
  EXPECT_THAT(
      ParseOAuthError(
          R"({"error":"invalid_client","error_description":"Client authentication failed"})"),
      Optional(IsOAuthError("invalid_client", "Client authentication failed")));
  EXPECT_THAT(ParseOAuthError(R"({"error":"invalid_grant"})"),
              Optional(IsOAuthError("invalid_grant", "")));
}

TEST(ParseOAuthError, ReadsTreezorsShapeWithTypeAsCode) {
  EXPECT_THAT(
      ParseOAuthError(
          R"({"errors":[{"type":"invalid_request","code":"unauthorized_ip",)"
          R"("message":"IP not allowed","docUrl":"https://docs.treezor.com/"}]})"),
      Optional(IsOAuthError("invalid_request", "IP not allowed")));
}

TEST(ParseOAuthError, TreezorShapeFallsBackToCodeWhenTypeIsMissing) {
  EXPECT_THAT(
      ParseOAuthError(R"({"errors":[{"code":"invalid_client","message":"no"}]})"),
      Optional(IsOAuthError("invalid_client", "no")));
  EXPECT_THAT(ParseOAuthError(R"({"errors":[{"code":18004,"message":"no"}]})"),
              Optional(IsOAuthError("18004", "no")));
}

TEST(ParseOAuthError, TreezorShapeFirstEntryCounts) {
  EXPECT_THAT(ParseOAuthError(R"({"errors":[{"type":"invalid_scope"},)"
                              R"({"type":"invalid_client"}]})"),
              Optional(IsOAuthError("invalid_scope", "")));
}

TEST(ParseOAuthError, DescriptionIsBoundedAndFreeOfControlCharacters) {
  const std::string long_text(500, 'x');
  const std::optional<OAuthError> error = ParseOAuthError(absl::StrCat(
      R"({"error":"invalid\u001b[31m_client","error_description":"line1\nline2\u0085)",
      long_text, R"("})"));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "invalid [31m_client");
  EXPECT_LE(error->description.size(), kMaxOAuthDescriptionChars);
  EXPECT_THAT(error->description, EndsWith("..."));
  EXPECT_THAT(error->description, ::testing::StartsWith("line1 line2 xxx"));
  for (char c : error->description) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20);
  }
}

TEST(ParseOAuthError, TruncationNeverSplitsAUtf8Character) {
  std::string accented;
  for (int i = 0; i < 150; ++i) accented += "\xc3\xa9";  // é
  const std::optional<OAuthError> error = ParseOAuthError(absl::StrCat(
      R"({"error":"invalid_client","error_description":")", accented, R"("})"));
  ASSERT_TRUE(error.has_value());
  const std::string text = error->description.substr(
      0, error->description.size() - 3);  // without "..."
  ASSERT_EQ(text.size() % 2, 0u);
  EXPECT_EQ(text, accented.substr(0, text.size()));
}

// --- Secrets echoed by the server ------------------------------------------

constexpr char kSecret[] = "Wq3rT8yU1iO5pA9sD2fG";

SecretRedactor RedactorOf(absl::string_view secret) {
  SecretRedactor redactor;
  redactor.Add(secret);
  return redactor;
}

void ExpectNoSixCharacterRunOf(absl::string_view secret,
                               absl::string_view text) {
  for (size_t i = 0; i + 6 <= secret.size(); ++i) {
    EXPECT_THAT(std::string(text), Not(HasSubstr(secret.substr(i, 6))));
  }
}

TEST(ParseOAuthError, SecretIsRedactedBeforeTheCut) {
  // The old order (cut at 200, then redact the whole secret) left its first
  // characters in the description when the cut fell inside it.
  for (size_t at = 170; at <= 200; ++at) {
    const std::optional<OAuthError> error = ParseOAuthError(
        absl::StrCat(R"({"error":"invalid_client","error_description":")",
                     std::string(at, 'x'), kSecret, R"("})"),
        RedactorOf(kSecret));
    ASSERT_TRUE(error.has_value());
    ExpectNoSixCharacterRunOf(kSecret, error->description);
    EXPECT_LE(error->description.size(), kMaxOAuthDescriptionChars);
  }
}

TEST(ParseOAuthError, SecretIsRedactedInBothShapesAndInTheCode) {
  const std::optional<OAuthError> rfc = ParseOAuthError(
      absl::StrCat(R"({"error":"bad )", kSecret,
                   R"(","error_description":"secret )", kSecret, R"( refused"})"),
      RedactorOf(kSecret));
  ASSERT_TRUE(rfc.has_value());
  EXPECT_EQ(rfc->code, "bad [redacted]");
  EXPECT_EQ(rfc->description, "secret [redacted] refused");

  const std::optional<OAuthError> treezor = ParseOAuthError(
      absl::StrCat(R"({"errors":[{"type":"invalid_client","message":")",
                   kSecret, R"("}]})"),
      RedactorOf(kSecret));
  ASSERT_TRUE(treezor.has_value());
  EXPECT_EQ(treezor->description, "[redacted]");
}

TEST(ParseOAuthError, RfcCodesAreKeptEvenWhenASecretContainsThem) {
  const std::optional<OAuthError> error = ParseOAuthError(
      R"({"error":"invalid_client","error_description":"no such client"})",
      RedactorOf("fake-client-secret"));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "invalid_client");
  EXPECT_EQ(error->description, "no such [redacted]");
}

TEST(ParseOAuthError, ReplacedControlCharacterCannotJoinPiecesOfASecret) {
  // "abc\tdef" shares no 6-character run with "abc def"; once the tab is a
  // space, it is the secret.
  const std::optional<OAuthError> error = ParseOAuthError(
      R"({"error":"invalid_client","error_description":"is abc\tdef ok"})",
      RedactorOf("abc def"));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->description, "is [redacted] ok");
}

TEST(IsRfc6749ErrorCode, KnowsTheSixTokenEndpointCodes) {
  for (const char* code :
       {"invalid_request", "invalid_client", "invalid_grant",
        "unauthorized_client", "unsupported_grant_type", "invalid_scope"}) {
    EXPECT_TRUE(IsRfc6749ErrorCode(code)) << code;
  }
  for (const char* code : {"", "Invalid_Client", "invalid_client ", "18004"}) {
    EXPECT_FALSE(IsRfc6749ErrorCode(code)) << code;
  }
}

TEST(ParseOAuthError, AnythingElseIsNotAnOAuthError) {
  for (const char* body :
       {"", "Service Unavailable", "<html>502</html>", "{}", "[]",
        R"({"error":""})", R"({"error":42})", R"({"errors":[]})",
        R"({"errors":[{"message":"no code"}]})", R"({"errors":"invalid"})",
        R"({"access_token":"t","token_type":"Bearer","expires_in":3600})"}) {
    EXPECT_EQ(ParseOAuthError(body), std::nullopt) << body;
  }
}

}  // namespace
}  // namespace treezor::broker
