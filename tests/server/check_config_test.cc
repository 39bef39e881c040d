// `treezor-token-broker --check-config FILE` (CheckConfig in server/main.cc),
// run as a user would run it: exit code, stdout, stderr.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/subprocess.h"
#include "tests/server/config_fixture.h"

namespace treezor::broker {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::treezor::broker::testing::ConfigFixture;
using ::treezor::broker::testing::kSecret;
using ::treezor::broker::testing::WriteFile;
using ::treezor::client::testing::Subprocess;

class CheckConfigTest : public ConfigFixture {
 protected:
  Subprocess::Result CheckConfig(const std::string& json) {
    WriteFile(dir_.File("broker.json"), json, 0644);
    return Subprocess::Run(
        TZB_BROKER_PATH, {.args = {"--check-config", dir_.File("broker.json")}});
  }

  static std::vector<std::string> Lines(const std::string& text) {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }
};

TEST_F(CheckConfigTest, ValidConfigExitsZeroWithTheVerdictOnStdout) {
  const Subprocess::Result r = CheckConfig(GoodJson());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(dir_.File("broker.json"),
                                ": configuration is valid (2 tenants, 2 "
                                "callers)\n"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(CheckConfigTest, WarningsGoToStderrOneALineAndTheConfigIsStillValid) {
  Chmod("acme.secret", 0644);
  Chmod("beta.key", 0604);
  const Subprocess::Result r = CheckConfig(GoodJson());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string file = dir_.File("broker.json");
  EXPECT_THAT(
      Lines(r.err),
      ElementsAre(
          AllOf(HasSubstr(absl::StrCat(
                    file, ": warning: tenants[0].clientSecretFile: \"",
                    dir_.File("acme.secret"), "\" is readable by others")),
                Not(HasSubstr(kSecret))),
          HasSubstr(absl::StrCat(file,
                                 ": warning: tenants[1].upstreamTls.keyFile: "
                                 "\""))));
  EXPECT_THAT(r.out, HasSubstr("configuration is valid (2 tenants, 2 callers, "
                               "2 warnings)"));
}

TEST_F(CheckConfigTest, ProblemsExitOneAndWarningsAreStillPrinted) {
  Chmod("acme.secret", 0644);
  std::string json = GoodJson();
  json.replace(json.find("\"clientId\": \"123456\","), 21, "");
  const Subprocess::Result r = CheckConfig(json);
  EXPECT_EQ(r.exit_code, 1);
  const std::string file = dir_.File("broker.json");
  EXPECT_THAT(Lines(r.err),
              ElementsAre(absl::StrCat(file, ": invalid configuration:"),
                          absl::StrCat(file, ": tenants[0].clientId: required"),
                          HasSubstr(": warning: tenants[0].clientSecretFile: ")));
  EXPECT_THAT(r.out, IsEmpty());
}

}  // namespace
}  // namespace treezor::broker
