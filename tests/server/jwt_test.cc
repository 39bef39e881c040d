#include "server/jwt.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

using ::testing::Eq;
using ::testing::Optional;

std::string B64(absl::string_view s) { return absl::WebSafeBase64Escape(s); }

// header.payload.signature with an unpadded base64url payload, as JWTs are.
std::string Jwt(absl::string_view payload_json,
                absl::string_view signature = "c2lnbmF0dXJl") {
  return absl::StrCat(B64(R"({"alg":"RS256","typ":"JWT"})"), ".",
                      B64(payload_json), ".", signature);
}

TEST(JwtExpiry, ReadsExpFromThePayload) {
  EXPECT_THAT(JwtExpiry(Jwt(R"({"sub":"1","exp":1800003600,"scope":["admin"]})")),
              Optional(Eq(absl::FromUnixSeconds(1800003600))));
}

TEST(JwtExpiry, AcceptsPaddedAndUnpaddedPayloads) {
  // 2 bytes of JSON short of a multiple of 3: unpadded base64 ends without '='.
  const std::string payload = R"({"exp":1800000000 })";
  ASSERT_NE(payload.size() % 3, 0u);
  const std::string unpadded = B64(payload);
  std::string padded = unpadded;
  while (padded.size() % 4 != 0) padded.push_back('=');
  ASSERT_NE(padded, unpadded);
  for (const std::string& encoded : {unpadded, padded}) {
    EXPECT_THAT(JwtExpiry(absl::StrCat(B64("{}"), ".", encoded, ".sig")),
                Optional(Eq(absl::FromUnixSeconds(1800000000))))
        << encoded;
  }
}

TEST(JwtExpiry, DoesNotVerifyTheSignature) {
  EXPECT_TRUE(JwtExpiry(Jwt(R"({"exp":1800000000})", "not-a-signature"))
                  .has_value());
  // alg "none" tokens have an empty signature segment.
  EXPECT_TRUE(JwtExpiry(Jwt(R"({"exp":1800000000})", "")).has_value());
}

TEST(JwtExpiry, TruncatesFractionalSeconds) {
  EXPECT_THAT(JwtExpiry(Jwt(R"({"exp":1800000000.9})")),
              Optional(Eq(absl::FromUnixSeconds(1800000000))));
}

TEST(JwtExpiry, OpaqueTokensHaveNoExpiry) {
  EXPECT_EQ(JwtExpiry(""), std::nullopt);
  EXPECT_EQ(JwtExpiry("opaque-token"), std::nullopt);
  EXPECT_EQ(JwtExpiry("a.b"), std::nullopt);
  EXPECT_EQ(JwtExpiry(absl::StrCat(Jwt(R"({"exp":1800000000})"), ".extra")),
            std::nullopt);
  EXPECT_EQ(JwtExpiry(absl::StrCat(".", B64(R"({"exp":1800000000})"), ".s")),
            std::nullopt);
}

TEST(JwtExpiry, PayloadMustBeBase64urlJsonObject) {
  EXPECT_EQ(JwtExpiry("aGVhZGVy.!!!not-base64!!!.sig"), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt("not json")), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt("[1800000000]")), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt("1800000000")), std::nullopt);
}

TEST(JwtExpiry, ExpMustBeAPlausibleNumber) {
  EXPECT_EQ(JwtExpiry(Jwt(R"({"sub":"1"})")), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt(R"({"exp":"1800000000"})")), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt(R"({"exp":null})")), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt(R"({"exp":0})")), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt(R"({"exp":-5})")), std::nullopt);
  EXPECT_EQ(JwtExpiry(Jwt(R"({"exp":1e300})")), std::nullopt);
}

}  // namespace
}  // namespace treezor::broker
