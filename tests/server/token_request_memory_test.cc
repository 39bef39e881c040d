// Issue 10 item 8: no buffer that held a secret is freed unwiped, from
// reading the secret to encoding the body (form, multipart, JSON), for the
// client secret and the password.
//
// How: tests/testing/freed_memory_scan.h — every block freed through
// operator delete or libcurl's allocator is searched for an 8-character run
// of the secrets. What libcurl copies while sending is out of scope: nothing
// is sent here.
#include <curl/curl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/curl_handle.h"
#include "server/token_request.h"
#include "server/token_request_body.h"
#include "tests/testing/freed_memory_scan.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {
namespace {

using ::treezor::broker::testing::FreedMemoryScan;

// Only letters and digits: every encoding (curl_easy_escape, JSON) keeps it
// as is, so one pattern finds it in any buffer.
constexpr char kSecret[] = "Zq7f3Kq9ZxWm4Rt8Yp2Lc6Vb";
constexpr char kPassword[] = "Pw5Hd8Jk2Nx7Qs4Tg9Bm3Rf1";

class TokenRequestMemoryTest : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() { testing::InstallCurlAllocator(); }

  void SetUp() override {
    // A directory of its own: CTest runs each case as its own process, in
    // parallel, and a shared one let one case rewrite another's files.
    std::string path =
        ::testing::TempDir() + "token_request_memory_test-XXXXXX";
    ASSERT_NE(mkdtemp(path.data()), nullptr) << path;
    dir_ = path;
    // Written with C stdio: no std::string holds the secret before watching.
    WriteFile(dir_ + "/secret", kSecret);
    WriteFile(dir_ + "/password", kPassword);
    WriteFile(dir_ + "/username", "alice");
  }

  static void WriteFile(const std::string& path, const char* content) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr) << path;
    std::fputs(content, f);
    std::fputs("\n", f);
    std::fclose(f);
  }

  v1::Tenant Tenant(bool password_grant) const {
    v1::Tenant tenant;
    tenant.set_name("acme");
    tenant.set_client_id("1234");
    tenant.set_client_secret_file(dir_ + "/secret");
    tenant.set_request_encoding(GetParam());
    if (password_grant) {
      tenant.set_grant_type("password");
      tenant.set_username_file(dir_ + "/username");
      tenant.set_password_file(dir_ + "/password");
    }
    return tenant;
  }

  // Reads the secrets, builds the request and encodes its body, then drops
  // everything; returns how many freed blocks still held a secret.
  int UnwipedBlocksOfOneRequest(const v1::Tenant& tenant) {
    internal::InitCurlOnce();
    internal::CurlHandle curl(curl_easy_init());
    EXPECT_NE(curl, nullptr);
    const FetchRequest fetch{.tenant = "acme",
                             .scopes = ScopeSet::FromList({"read_all"})};
    FreedMemoryScan scan({kSecret, kPassword});
    {
      absl::StatusOr<TokenRequest> request = BuildTokenRequest(tenant, fetch);
      EXPECT_TRUE(request.ok()) << request.status();
      if (request.ok()) {
        absl::StatusOr<EncodedBody> body =
            EncodeBody(curl.get(), tenant, request->params);
        EXPECT_TRUE(body.ok()) << body.status();
      }
    }
    return scan.unwiped_blocks();
  }

  std::string dir_;
};

TEST_P(TokenRequestMemoryTest, ClientSecretIsWipedFromEveryBuffer) {
  EXPECT_EQ(UnwipedBlocksOfOneRequest(Tenant(false)), 0);
}

TEST_P(TokenRequestMemoryTest, PasswordIsWipedFromEveryBuffer) {
  EXPECT_EQ(UnwipedBlocksOfOneRequest(Tenant(true)), 0);
}

// The scan itself works: a std::string copy of the secret, freed as is, is
// seen.
TEST_P(TokenRequestMemoryTest, AnUnwipedCopyIsDetected) {
  FreedMemoryScan scan({kSecret, kPassword});
  { std::string copy = absl::StrCat(kSecret, " ", GetParam()); }
  EXPECT_EQ(scan.unwiped_blocks(), 1);
}

INSTANTIATE_TEST_SUITE_P(Encodings, TokenRequestMemoryTest,
                         ::testing::Values("form", "multipart", "json"));

}  // namespace
}  // namespace treezor::broker
