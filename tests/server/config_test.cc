// LoadConfigFile: the entry point that reads, parses and validates a file.
#include "server/config.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/config_fixture.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::treezor::broker::testing::ConfigFixture;
using ::treezor::broker::testing::Lines;
using ::treezor::broker::testing::StatusIs;
using ::treezor::broker::testing::WriteFile;

class ConfigTest : public ConfigFixture {};

TEST_F(ConfigTest, LoadConfigFileReadsParsesAndValidates) {
  WriteFile(dir_.File("broker.json"), GoodJson());
  ASSERT_OK_AND_ASSIGN(v1::BrokerConfig config,
                       LoadConfigFile(dir_.File("broker.json")));
  EXPECT_EQ(config.listen_address(), "0.0.0.0:8443");
}

TEST_F(ConfigTest, LoadConfigFileMissingNamesThePath) {
  EXPECT_THAT(
      LoadConfigFile(dir_.File("nope.json")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir_.File("nope.json"))));
}

TEST_F(ConfigTest, LoadConfigFileErrorsStartWithThePath) {
  std::string json = GoodJson();
  json.replace(json.find("\"clientId\": \"123456\","), 21, "");
  WriteFile(dir_.File("broker.json"), json);
  absl::StatusOr<v1::BrokerConfig> loaded =
      LoadConfigFile(dir_.File("broker.json"));
  ASSERT_THAT(loaded,
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(Lines(loaded.status()),
              ElementsAre(absl::StrCat(dir_.File("broker.json"),
                                       ": tenants[0].clientId: required")));
}

TEST_F(ConfigTest, ExampleConfigInTheRepositoryParses) {
  // (Not found from __FILE__: ccache with CCACHE_BASEDIR makes it relative.)
  const std::string example =
      absl::StrCat(TZB_SOURCE_DIR, "/deploy/examples/broker.json");
  std::ifstream in(example);
  ASSERT_TRUE(in.good()) << example;
  std::string json((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_OK(ParseConfigJson(json));
}

TEST_F(ConfigTest, LoadConfigFileReportsWarnings) {
  Chmod("acme.secret", 0644);
  WriteFile(dir_.File("broker.json"), GoodJson(), 0644);
  std::vector<ConfigWarning> warnings;
  ASSERT_OK(LoadConfigFile(dir_.File("broker.json"), &warnings));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].field, "tenants[0].clientSecretFile");
  EXPECT_THAT(warnings[0].message, HasSubstr("is readable by others"));
}

TEST_F(ConfigTest, LoadConfigFileClearsWarningsItCannotLookFor) {
  std::vector<ConfigWarning> warnings = {{"stale", "from an earlier call"}};
  EXPECT_THAT(LoadConfigFile(dir_.File("nope.json"), &warnings),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope.json")));
  EXPECT_THAT(warnings, ::testing::IsEmpty());
}

// Whoever can write the config decides who gets tokens.
TEST_F(ConfigTest, LoadConfigFileRefusesAConfigOthersMayWrite) {
  WriteFile(dir_.File("broker.json"), GoodJson(), 0666);
  absl::StatusOr<v1::BrokerConfig> loaded =
      LoadConfigFile(dir_.File("broker.json"));
  EXPECT_THAT(loaded, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("may be written by its group or "
                                         "others (mode 0666)")));
  EXPECT_THAT(Lines(loaded.status()),
              ElementsAre(::testing::StartsWith(dir_.File("broker.json"))));
  // And with parse errors, every problem still comes at once.
  WriteFile(dir_.File("broker.json"), "{\"bogus\": 1}", 0620);
  EXPECT_THAT(Lines(LoadConfigFile(dir_.File("broker.json")).status()),
              ElementsAre(HasSubstr("(mode 0620)"),
                          HasSubstr("unknown field \"bogus\"")));
}

}  // namespace
}  // namespace treezor::broker
