// ParseConfigJson: JSON text into a BrokerConfig, every problem naming its
// JSON field path.
#include "server/config_parser.h"

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::StartsWith;
using ::treezor::broker::testing::StatusIs;

std::vector<std::string> Lines(const absl::Status& status) {
  return absl::StrSplit(status.message(), '\n');
}

void ExpectParseErrorLines(absl::string_view json,
                           const std::vector<std::string>& lines) {
  absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(json);
  ASSERT_THAT(config,
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(Lines(config.status()), ::testing::ElementsAreArray(lines));
}

TEST(ConfigParser, UnknownTopLevelField) {
  ExpectParseErrorLines(R"({"listenAddress": "a:1", "bogus": 1})",
                        {"config: unknown field \"bogus\""});
}

TEST(ConfigParser, UnknownNestedFieldNamesItsPath) {
  ExpectParseErrorLines(
      R"({"tenants": [{"name": "a"}, {"upstreamTls": {"crtFile": "x"}}]})",
      {"config: tenants[1].upstreamTls: unknown field \"crtFile\""});
}

TEST(ConfigParser, ProtoFieldNameIsUnknownWithAHint) {
  ExpectParseErrorLines(
      R"({"listen_address": "a:1"})",
      {"config: unknown field \"listen_address\" (did you mean "
       "\"listenAddress\"?)"});
}

TEST(ConfigParser, WrongTypesNameTheirPaths) {
  ExpectParseErrorLines(
      R"({"upstream": {"maxConcurrentRequests": "8"},
          "tenants": [{"name": 3, "defaultScopes": "admin"}],
          "callers": {"identity": "x"},
          "renewal": {"jitterFraction": "0.1", "idleTimeout": 60}})",
      {"config: callers: expected an array, got an object",
       "config: renewal.idleTimeout: expected a duration string such as "
       "\"1.5s\", got a number",
       "config: renewal.jitterFraction: expected a number, got a string",
       "config: tenants[0].defaultScopes: expected an array, got a string",
       "config: tenants[0].name: expected a string, got a number",
       "config: upstream.maxConcurrentRequests: expected an integer, got a "
       "string"});
}

TEST(ConfigParser, IntegersMustBeWholeAndInRange) {
  ExpectParseErrorLines(
      R"({"upstream": {"maxConcurrentRequests": 1.5}})",
      {"config: upstream.maxConcurrentRequests: expected an integer in "
       "[-2147483648, 2147483647], got 1.5"});
  ExpectParseErrorLines(
      R"({"upstream": {"maxConcurrentRequests": 3000000000}})",
      {"config: upstream.maxConcurrentRequests: expected an integer in "
       "[-2147483648, 2147483647], got 3000000000"});
}

TEST(ConfigParser, MalformedDuration) {
  ExpectParseErrorLines(
      R"({"shutdownGracePeriod": "10"})",
      {"config: shutdownGracePeriod: expected a duration such as \"30s\" or "
       "\"0.5s\" (at most 315576000000s), got \"10\""});
  for (const char* bad :
       {"1.s", "-s", "1.1234567891s", "315576000001s", "1m", "+1s", " 1s"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(ParseConfigJson(
                    absl::StrCat(R"({"shutdownGracePeriod": ")", bad, "\"}")),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         StartsWith("config: shutdownGracePeriod: expected a "
                                    "duration")));
  }
  EXPECT_OK(ParseConfigJson(R"({"shutdownGracePeriod": "315576000000s"})"));
  EXPECT_OK(ParseConfigJson(R"({"shutdownGracePeriod": "-0.000000001s"})"));
}

TEST(ConfigParser, ArrayElementOfWrongType) {
  ExpectParseErrorLines(
      R"({"callers": [{"identity": "a"}, 5, null]})",
      {"config: callers[1]: expected an object, got a number",
       "config: callers[2]: null is not allowed in an array"});
}

TEST(ConfigParser, DuplicateKeyIsAnError) {
  ExpectParseErrorLines(R"({"listenAddress": "a:1", "listenAddress": "b:2"})",
                        {"config: duplicate key \"listenAddress\""});
}

TEST(ConfigParser, InvalidJson) {
  absl::StatusOr<v1::BrokerConfig> config =
      ParseConfigJson("{\"listenAddress\": \"a:1\" \"x\": 2}");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               StartsWith("config: invalid JSON: ")));
  EXPECT_THAT(Lines(config.status()), ::testing::SizeIs(1));
  EXPECT_THAT(ParseConfigJson(""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("config: invalid JSON: ")));
}

TEST(ConfigParser, DocumentMustBeAnObject) {
  ExpectParseErrorLines("[1]",
                        {"config: expected a JSON object, got an array"});
}

TEST(ConfigParser, NullMeansAbsent) {
  ASSERT_OK_AND_ASSIGN(
      v1::BrokerConfig config,
      ParseConfigJson(R"({"listenAddress": null, "renewal": null})"));
  EXPECT_EQ(config.listen_address(), "");
  EXPECT_FALSE(config.has_renewal());
}

}  // namespace
}  // namespace treezor::broker
