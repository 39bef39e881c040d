#include "tests/testing/cert_factory.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

X509Ptr LoadCert(const std::string& path) {
  std::unique_ptr<FILE, decltype(&fclose)> f(fopen(path.c_str(), "r"), &fclose);
  if (f == nullptr) return nullptr;
  return X509Ptr(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
}

PkeyPtr LoadKey(const std::string& path) {
  std::unique_ptr<FILE, decltype(&fclose)> f(fopen(path.c_str(), "r"), &fclose);
  if (f == nullptr) return nullptr;
  return PkeyPtr(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
}

// X509_V_OK, or why `leaf` does not verify against `ca` now.
int Verify(X509* leaf, X509* ca) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(
      X509_STORE_new(), &X509_STORE_free);
  X509_STORE_add_cert(store.get(), ca);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(
      X509_STORE_CTX_new(), &X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_verify_cert(ctx.get());
  return X509_STORE_CTX_get_error(ctx.get());
}

std::set<std::string> UriSans(X509* cert) {
  std::set<std::string> uris;
  GENERAL_NAMES* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const ASN1_STRING* uri = name->d.uniformResourceIdentifier;
    uris.emplace(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                 ASN1_STRING_length(uri));
  }
  GENERAL_NAMES_free(names);
  return uris;
}

std::string CommonName(X509* cert) {
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                            sizeof(cn));
  return cn;
}

std::set<std::string> FileNames(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

TEST(CertFactory, CreatesCaThatSignsServerLeaf) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.path(), "Test CA"));
  ASSERT_OK_AND_ASSIGN(CertPaths paths,
                       factory.Issue("treezor", CertFactory::ServerLeaf("tz")));

  EXPECT_EQ(factory.ca_cert_file(), dir.File("test-ca.crt"));
  EXPECT_EQ(paths.cert_file, dir.File("treezor.crt"));
  EXPECT_EQ(paths.key_file, dir.File("treezor.key"));
  EXPECT_EQ(paths.ca_file, factory.ca_cert_file());
  X509Ptr ca = LoadCert(factory.ca_cert_file());
  X509Ptr leaf = LoadCert(paths.cert_file);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(leaf, nullptr);

  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_EQ(Verify(leaf.get(), ca.get()), X509_V_OK);
  EXPECT_EQ(CommonName(leaf.get()), "tz");
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()) &
                (XKU_SSL_SERVER | XKU_SSL_CLIENT),
            XKU_SSL_SERVER | XKU_SSL_CLIENT);
}

TEST(CertFactory, KeyMatchesCertificateAndIsPrivate) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.path(), "Clients"));
  ASSERT_OK_AND_ASSIGN(CertPaths paths,
                       factory.Issue("acme", {.common_name = "acme"}));

  X509Ptr cert = LoadCert(paths.cert_file);
  PkeyPtr key = LoadKey(paths.key_file);
  ASSERT_NE(cert, nullptr);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  struct stat st;
  ASSERT_EQ(stat(paths.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(factory.ca_cert_file(), dir.File("clients-ca.crt"));
}

TEST(CertFactory, IssuesRsa2048WhenAsked) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.path(), "CA"));
  CertFactory::LeafOptions options{.common_name = "treezor-client"};
  options.key_type = CertFactory::KeyType::kRsa2048;
  ASSERT_OK_AND_ASSIGN(CertPaths paths, factory.Issue("rsa", options));

  PkeyPtr key = LoadKey(paths.key_file);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 2048);
}

TEST(CertFactory, UriSansAreWritten) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.path(), "CA"));
  CertFactory::LeafOptions options{.common_name = "billing"};
  options.uri_sans = {"spiffe://example.org/ns/payments/sa/billing"};
  ASSERT_OK_AND_ASSIGN(CertPaths paths, factory.Issue("billing", options));

  X509Ptr cert = LoadCert(paths.cert_file);
  ASSERT_NE(cert, nullptr);
  EXPECT_THAT(UriSans(cert.get()),
              ElementsAre("spiffe://example.org/ns/payments/sa/billing"));
}

TEST(CertFactory, ValidityWindowFollowsOptions) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.path(), "CA"));
  CertFactory::LeafOptions expired{.common_name = "old"};
  expired.not_before_offset = -absl::Hours(2);
  expired.validity = absl::Hours(1);
  CertFactory::LeafOptions future{.common_name = "new"};
  future.not_before_offset = absl::Hours(1);
  ASSERT_OK_AND_ASSIGN(CertPaths old_paths, factory.Issue("old", expired));
  ASSERT_OK_AND_ASSIGN(CertPaths new_paths, factory.Issue("new", future));

  X509Ptr ca = LoadCert(factory.ca_cert_file());
  EXPECT_EQ(Verify(LoadCert(old_paths.cert_file).get(), ca.get()),
            X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(Verify(LoadCert(new_paths.cert_file).get(), ca.get()),
            X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST(CertFactory, ReissueReplacesFilesAndLeavesNoTemporaries) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.path(), "CA"));
  ASSERT_OK_AND_ASSIGN(CertPaths first,
                       factory.Issue("server", {.common_name = "v1"}));
  ASSERT_OK_AND_ASSIGN(CertPaths second,
                       factory.Issue("server", {.common_name = "v2"}));

  EXPECT_EQ(first.cert_file, second.cert_file);
  X509Ptr cert = LoadCert(second.cert_file);
  PkeyPtr key = LoadKey(second.key_file);
  EXPECT_EQ(CommonName(cert.get()), "v2");
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_THAT(FileNames(dir.path()),
              UnorderedElementsAre("ca-ca.crt", "ca-ca.key", "server.crt",
                                   "server.key"));
}

TEST(CertFactory, RejectsSanWithComma) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.path(), "CA"));
  CertFactory::LeafOptions options{.common_name = "x"};
  options.dns_sans = {"a.example,b.example"};
  EXPECT_THAT(factory.Issue("x", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("comma")));
}

TEST(CertFactory, CreateMakesMissingDirectories) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(CertFactory factory,
                       CertFactory::Create(dir.File("a/b"), "CA"));
  EXPECT_TRUE(std::filesystem::exists(dir.File("a/b/ca-ca.crt")));
}

TEST(CertFactory, CreateReportsAnUnusableDirectory) {
  TempDir dir;
  std::FILE* f = std::fopen(dir.File("file").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  EXPECT_THAT(
      CertFactory::Create(dir.File("file/sub"), "CA"),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("file/sub")));
}

TEST(TempDir, IsRemovedWithItsContents) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    std::filesystem::create_directory(dir.File("sub"));
    std::FILE* f = std::fopen(dir.File("sub/file").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    EXPECT_THAT(FileNames(path), ElementsAre("sub"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_THAT(path, Not(IsEmpty()));
}

}  // namespace
}  // namespace treezor::broker::testing
