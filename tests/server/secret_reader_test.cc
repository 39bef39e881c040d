#include "server/secret_reader.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "server/treezor_oauth_client.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::treezor::broker::testing::StatusIs;
using ::treezor::broker::testing::TempDir;

constexpr char kSecret[] = "s3cr3t-value-never-printed";
constexpr char kVariable[] = "TZB_SECRET_READER_TEST";

class SecretReaderTest : public ::testing::Test {
 protected:
  ~SecretReaderTest() override { ::unsetenv(kVariable); }

  std::string File(const std::string& name, const std::string& content) {
    const std::string path = dir_.File(name);
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  TempDir dir_;
};

// --- One trimming rule for every source ------------------------------------

TEST_F(SecretReaderTest, TrailingSpacesTabsAndNewlinesAreRemovedFromAFile) {
  ASSERT_OK_AND_ASSIGN(
      Secret secret,
      ReadSecretFile("clientSecretFile",
                     File("s", absl::StrCat(kSecret, " \t\r\n \n"))));
  EXPECT_EQ(secret.view(), kSecret);
}

TEST_F(SecretReaderTest, FileAndEnvironmentVariableAreTrimmedIdentically) {
  for (const std::string& raw :
       {std::string(kSecret), absl::StrCat(kSecret, "\n"),
        absl::StrCat(kSecret, "\r\n"), absl::StrCat(kSecret, "  \t"),
        absl::StrCat("  ", kSecret, " x \n"), std::string("a\tb\n\n")}) {
    ASSERT_EQ(::setenv(kVariable, raw.c_str(), 1), 0);
    ASSERT_OK_AND_ASSIGN(Secret from_file,
                         ReadSecretFile("passwordFile", File("s", raw)));
    ASSERT_OK_AND_ASSIGN(Secret from_env,
                         ReadSecretEnv("clientSecretEnv", kVariable));
    EXPECT_EQ(from_file.view(), from_env.view()) << absl::CEscape(raw);
    EXPECT_EQ(from_file.view(), absl::StripTrailingAsciiWhitespace(raw))
        << absl::CEscape(raw);
  }
}

TEST_F(SecretReaderTest, LeadingAndInnerWhitespaceIsKept) {
  ASSERT_OK_AND_ASSIGN(Secret secret,
                       ReadSecretFile("usernameFile", File("u", " a b \n")));
  EXPECT_EQ(secret.view(), " a b");
}

// --- Errors name the field and the source, never the content ---------------

TEST_F(SecretReaderTest, WhitespaceOnlyFileIsEmpty) {
  const std::string path = File("blank", " \t\r\n");
  EXPECT_THAT(ReadSecretFile("clientSecretFile", path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("clientSecretFile: \"", path,
                                    "\" is empty (trailing whitespace does "
                                    "not count)")));
}

TEST_F(SecretReaderTest, WhitespaceOnlyVariableIsEmpty) {
  ASSERT_EQ(::setenv(kVariable, "\n ", 1), 0);
  EXPECT_THAT(
      ReadSecretEnv("clientSecretEnv", kVariable),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               absl::StrCat("clientSecretEnv: environment variable ", kVariable,
                            " is empty (trailing whitespace does not "
                            "count)")));
}

TEST_F(SecretReaderTest, UnsetVariableIsNotSet) {
  ::unsetenv(kVariable);
  EXPECT_THAT(ReadSecretEnv("clientSecretEnv", kVariable),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("clientSecretEnv: environment variable ",
                                    kVariable, " is not set")));
}

TEST_F(SecretReaderTest, MissingFileCannotBeRead) {
  const std::string path = dir_.File("missing");
  EXPECT_THAT(ReadSecretFile("passwordFile", path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       StartsWith(absl::StrCat("passwordFile: cannot read \"",
                                               path, "\": "))));
}

TEST_F(SecretReaderTest, DirectoryIsNotARegularFile) {
  EXPECT_THAT(ReadSecretFile("passwordFile", dir_.path()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("passwordFile: \"", dir_.path(),
                                    "\" is not a regular file")));
}

TEST_F(SecretReaderTest, EmptyFileOrVariableNameIsRequired) {
  EXPECT_THAT(ReadSecretFile("usernameFile", ""),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "usernameFile: required"));
  EXPECT_THAT(ReadSecretEnv("clientSecretEnv", ""),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "clientSecretEnv: required"));
}

TEST_F(SecretReaderTest, ClientSecretComesFromTheFileElseTheVariable) {
  ASSERT_EQ(::setenv(kVariable, "from-env\n", 1), 0);
  v1::Tenant tenant;
  tenant.set_client_secret_file(File("s", "from-file\n"));
  tenant.set_client_secret_env(kVariable);
  ASSERT_OK_AND_ASSIGN(Secret secret, ReadClientSecret(tenant));
  EXPECT_EQ(secret.view(), "from-file");

  tenant.clear_client_secret_file();
  ASSERT_OK_AND_ASSIGN(secret, ReadClientSecret(tenant));
  EXPECT_EQ(secret.view(), "from-env");

  tenant.clear_client_secret_env();
  EXPECT_THAT(ReadClientSecret(tenant),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "clientSecretFile: required (or clientSecretEnv)"));
}

TEST_F(SecretReaderTest, WholeFileIsReadBeyondOneBuffer) {
  const std::string big(10'000, 'k');
  ASSERT_OK_AND_ASSIGN(Secret content, ReadWholeFile(File("big", big)));
  EXPECT_EQ(content.view(), big);
}

// --- Size limit ---------------------------------------------------------------

TEST_F(SecretReaderTest, SecretFileUpToTheLimitIsRead) {
  const std::string at_limit(kMaxSecretFileBytes, 'k');
  ASSERT_OK_AND_ASSIGN(Secret secret,
                       ReadSecretFile("passwordFile", File("at", at_limit)));
  EXPECT_EQ(secret.view().size(), kMaxSecretFileBytes);
}

TEST_F(SecretReaderTest, SecretFileOverTheLimitIsRefusedNamingTheField) {
  const std::string path =
      File("big", std::string(kMaxSecretFileBytes + 1, 'k'));
  EXPECT_THAT(ReadSecretFile("clientSecretFile", path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("clientSecretFile: \"", path,
                                    "\" is larger than 65536 bytes")));
}

TEST_F(SecretReaderTest, FileThatReportsNoSizeIsStillBounded) {
  // procfs files report st_size 0 and are regular: the limit holds while
  // reading. (/proc/self/maps of a test binary is well over 64 bytes.)
  EXPECT_THAT(ReadWholeFile("/proc/self/maps", 64),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "\"/proc/self/maps\" is larger than 64 bytes"));
}

// --- Validation and the fetch path say the same thing -----------------------

// The problem ValidateConfig reports for tenants[0], without its location.
std::string ValidationProblem(const v1::Tenant& tenant) {
  v1::BrokerConfig config;
  *config.add_tenants() = tenant;
  const absl::Status status = ValidateConfig(config);
  for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
    if (absl::ConsumePrefix(&line, "config: tenants[0].") &&
        (absl::StartsWith(line, "clientSecret") ||
         absl::StartsWith(line, "usernameFile") ||
         absl::StartsWith(line, "passwordFile"))) {
      return std::string(line);
    }
  }
  return absl::StrCat("no secret problem in: ", status.message());
}

// The error of a fetch for the tenant, without its "tenant acme: " prefix.
std::string FetchProblem(const v1::Tenant& tenant) {
  // Never contacted: the secret is read before any connection is made.
  TreezorOAuthClient client({tenant}, UpstreamSettings());
  const FetchResult result = client.Fetch({.tenant = tenant.name()});
  EXPECT_THAT(result.token, StatusIs(absl::StatusCode::kFailedPrecondition,
                                     StartsWith("tenant acme: ")));
  return std::string(
      absl::StripPrefix(result.token.status().message(), "tenant acme: "));
}

v1::Tenant TenantWithSecretFile(const std::string& file) {
  v1::Tenant tenant;
  tenant.set_name("acme");
  tenant.set_base_url("https://127.0.0.1:1");
  tenant.set_client_id("42");
  tenant.set_client_secret_file(file);
  return tenant;
}

TEST_F(SecretReaderTest,
       WhitespaceOnlySecretFileFailsCheckConfigAndFetchAlike) {
  const v1::Tenant tenant = TenantWithSecretFile(File("blank", "  \n\t\r\n"));
  const std::string validation = ValidationProblem(tenant);
  EXPECT_THAT(validation, StartsWith("clientSecretFile: \""));
  EXPECT_THAT(validation, HasSubstr("is empty"));
  EXPECT_EQ(FetchProblem(tenant), validation);
}

TEST_F(SecretReaderTest, EverySecretSourceFailsCheckConfigAndFetchAlike) {
  ASSERT_EQ(::setenv(kVariable, " \n", 1), 0);
  v1::Tenant from_env = TenantWithSecretFile("");
  from_env.set_client_secret_env(kVariable);

  v1::Tenant missing = TenantWithSecretFile(dir_.File("missing"));

  v1::Tenant password = TenantWithSecretFile(File("s", kSecret));
  password.set_grant_type("password");
  password.set_username_file(File("user", "someone\n"));
  password.set_password_file(File("pw", "\r\n"));

  for (const v1::Tenant& tenant : {from_env, missing, password}) {
    const std::string validation = ValidationProblem(tenant);
    EXPECT_EQ(FetchProblem(tenant), validation);
    EXPECT_THAT(validation, Not(HasSubstr(kSecret)));
  }
}

TEST_F(SecretReaderTest, OversizedSecretFileFailsCheckConfigAndFetchAlike) {
  const std::string path =
      File("huge", std::string(2 * kMaxSecretFileBytes, 'k'));
  const v1::Tenant tenant = TenantWithSecretFile(path);
  const std::string validation = ValidationProblem(tenant);
  EXPECT_EQ(validation, absl::StrCat("clientSecretFile: \"", path,
                                     "\" is larger than 65536 bytes"));
  EXPECT_EQ(FetchProblem(tenant), validation);
}

}  // namespace
}  // namespace treezor::broker
