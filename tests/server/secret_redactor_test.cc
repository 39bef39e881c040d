#include "server/secret_redactor.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

SecretRedactor RedactorOf(absl::string_view secret) {
  SecretRedactor redactor;
  redactor.Add(secret);
  return redactor;
}

TEST(SecretRedactor, WithoutSecretsChangesNothing) {
  SecretRedactor redactor;
  redactor.Add("");
  EXPECT_TRUE(redactor.empty());
  EXPECT_EQ(redactor.Redact("anything at all"), "anything at all");
}

TEST(SecretRedactor, RedactsTheSecretWhereverItIs) {
  const SecretRedactor r = RedactorOf("s3cr3t-Value");
  EXPECT_EQ(r.Redact("s3cr3t-Value"), "[redacted]");
  EXPECT_EQ(r.Redact("a s3cr3t-Value b s3cr3t-Value"),
            "a [redacted] b [redacted]");
}

TEST(SecretRedactor, RedactsEveryRunOfSixOrMoreCharacters) {
  const SecretRedactor r = RedactorOf("s3cr3t-Value");
  EXPECT_EQ(r.Redact("got s3cr3t- only"), "got [redacted] only");   // 7
  EXPECT_EQ(r.Redact("tail t-Valu!"), "tail [redacted]!");          // 6
  EXPECT_EQ(r.Redact("five: s3cr3 ok"), "five: s3cr3 ok");          // 5
  EXPECT_EQ(r.Redact("cr3t-V and 3t-Val"), "[redacted] and [redacted]");
}

TEST(SecretRedactor, OverlappingAndAdjacentTracesMakeOneMarker) {
  const SecretRedactor r = RedactorOf("abcdefghij");
  EXPECT_EQ(r.Redact("xabcdefghijabcdefy"), "x[redacted]y");
}

TEST(SecretRedactor, ShortSecretIsMatchedWhole) {
  const SecretRedactor r = RedactorOf("k9!");
  EXPECT_EQ(r.Redact("key k9! and k9"), "key [redacted] and k9");
}

TEST(SecretRedactor, RedactsUrlEncodedForms) {
  const SecretRedactor r = RedactorOf("a b/c+d=e&f");
  EXPECT_EQ(r.Redact("a%20b%2Fc%2Bd%3De%26f"), "[redacted]");  // curl
  EXPECT_EQ(r.Redact("a%20b%2fc%2bd%3de%26f"), "[redacted]");  // lower hex
  EXPECT_EQ(r.Redact("a+b%2Fc%2Bd%3De%26f"), "[redacted]");    // HTML form
  EXPECT_EQ(r.Redact("x=%2Bd%3De&y"), "x=[redacted]&y");       // in part
}

TEST(SecretRedactor, RedactsJsonEscapedForms) {
  const SecretRedactor r = RedactorOf("q\"w\\e/r\xc3\xa9t\ny");
  EXPECT_EQ(r.Redact(R"(q\"w\\e/r)" "\xc3\xa9" R"(t\ny)"), "[redacted]");
  // PHP's json_encode: \/ and \u00e9.
  EXPECT_EQ(r.Redact(R"(q\"w\\e\/r\u00e9t\ny)"), "[redacted]");
}

TEST(SecretRedactor, SeveralSecretsAreAllRedacted) {
  SecretRedactor r;
  r.Add("first-secret");
  r.Add("second-secret");
  EXPECT_EQ(r.Redact("1 first-secret 2 second-secret"),
            "1 [redacted] 2 [redacted]");
}

TEST(SecretRedactor, NeverLeavesHalfAUtf8Character) {
  // The secret's window "\xa9abcde" starts inside "é" (c3 a9); in the text
  // the same continuation byte follows another lead byte ("©", c2 a9).
  const SecretRedactor r = RedactorOf("Z\xc3\xa9" "abcdef");
  EXPECT_EQ(r.Redact("Q\xc2\xa9" "abcdeq"), "Q[redacted]q");
}

}  // namespace
}  // namespace treezor::broker
