#include "common/pem.h"

#include <openssl/err.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cert_factory.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::treezor::broker::testing::CertFactory;
using ::treezor::broker::testing::CertPaths;
using ::treezor::broker::testing::StatusIs;
using ::treezor::broker::testing::TempDir;

class PemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(CertFactory ca,
                         CertFactory::Create(dir_.path(), "Pem Test CA"));
    ASSERT_OK_AND_ASSIGN(leaf_, ca.Issue("leaf", {.common_name = "leaf"}));
    ASSERT_OK_AND_ASSIGN(other_, ca.Issue("other", {.common_name = "other"}));
    std::ofstream(dir_.File("not-pem.txt")) << "hello\n";
  }

  TempDir dir_;
  CertPaths leaf_;
  CertPaths other_;
};

TEST_F(PemTest, ReadsACertificateAndItsKey) {
  ASSERT_OK_AND_ASSIGN(X509Ptr cert,
                       ReadFirstCertificate(leaf_.cert_file, "certFile"));
  ASSERT_OK_AND_ASSIGN(PkeyPtr key, ReadPrivateKey(leaf_.key_file, "keyFile"));
  EXPECT_OK(CheckKeyMatchesCertificate(*cert, *key, "keyFile", leaf_.key_file,
                                       leaf_.cert_file));
}

TEST_F(PemTest, EmptyPathIsRequiredNamingTheField) {
  EXPECT_THAT(
      ReadFirstCertificate("", "ca_file"),
      StatusIs(absl::StatusCode::kInvalidArgument, "ca_file: required"));
  EXPECT_THAT(
      ReadPrivateKey("", "key_file"),
      StatusIs(absl::StatusCode::kInvalidArgument, "key_file: required"));
}

TEST_F(PemTest, MissingFileNamesTheFieldAndTheFile) {
  const std::string missing = dir_.File("missing.crt");
  EXPECT_THAT(
      ReadFirstCertificate(missing, "serverTls.certFile"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat("serverTls.certFile: cannot read file ", missing)));
  EXPECT_THAT(ReadPrivateKey(missing, "key_file"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith("key_file: "), HasSubstr(missing))));
}

TEST_F(PemTest, FileWithoutPemNamesTheFileAndWhatIsMissing) {
  const std::string file = dir_.File("not-pem.txt");
  EXPECT_THAT(
      ReadFirstCertificate(file, "cert_file"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               StartsWith(absl::StrCat("cert_file: ", file,
                                       " holds no PEM certificate ("))));
  // A certificate is not a private key.
  EXPECT_THAT(
      ReadPrivateKey(leaf_.cert_file, "key_file"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               StartsWith(absl::StrCat("key_file: ", leaf_.cert_file,
                                       " holds no PEM private key ("))));
  // No error is left behind for the next OpenSSL call to trip on.
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(PemTest, KeyOfAnotherCertificateDoesNotMatch) {
  ASSERT_OK_AND_ASSIGN(X509Ptr cert,
                       ReadFirstCertificate(leaf_.cert_file, "certFile"));
  ASSERT_OK_AND_ASSIGN(PkeyPtr key, ReadPrivateKey(other_.key_file, "keyFile"));
  EXPECT_THAT(CheckKeyMatchesCertificate(*cert, *key, "serverTls.keyFile",
                                         other_.key_file, "serverTls.certFile"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("serverTls.keyFile: ", other_.key_file,
                                    " does not match the certificate in "
                                    "serverTls.certFile")));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(OpenSslErrorString, EmptyQueueGivesTheFallback) {
  ERR_clear_error();
  EXPECT_EQ(OpenSslErrorString("nothing"), "nothing");
}

}  // namespace
}  // namespace treezor
