#include "common/token_digest.h"

#include "gtest/gtest.h"

namespace treezor {
namespace {

TEST(TokenDigest, Sha256HexIsLowercaseHexOfTheSha256) {
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  EXPECT_EQ(TokenSha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(TokenSha256Hex("").size(), 64u);
}

TEST(TokenDigest, FingerprintIsTheFirstTwelveDigits) {
  EXPECT_EQ(TokenFingerprint("abc"), "ba7816bf8f01");
  EXPECT_EQ(TokenFingerprint("abc"), TokenSha256Hex("abc").substr(0, 12));
}

}  // namespace
}  // namespace treezor
