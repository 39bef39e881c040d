// Issue 10 item 8: no buffer that held a secret is freed unwiped, from
// reading the secret to encoding the body (form, multipart, JSON), for the
// client secret and the password.
//
// How: this test binary replaces the global operator new/delete, and gives
// libcurl its allocator (curl_global_init_mem), so that every block is
// zeroed when allocated and, while a test is watching, scanned when freed:
// a freed block that holds an 8-character run of the secret is a buffer
// nobody wiped. (Zeroing at allocation means whatever a block holds when it
// is freed was written during its life.) What libcurl copies while sending
// is out of scope: nothing is sent here.
#include <curl/curl.h>
#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/curl_handle.h"
#include "server/token_request.h"
#include "server/token_request_body.h"
#include "treezor/broker/v1/config.pb.h"

namespace {

// Only letters and digits: every encoding (curl_easy_escape, JSON) keeps it
// as is, so one pattern finds it in any buffer.
constexpr char kSecret[] = "Zq7f3Kq9ZxWm4Rt8Yp2Lc6Vb";
constexpr char kPassword[] = "Pw5Hd8Jk2Nx7Qs4Tg9Bm3Rf1";
constexpr size_t kRun = 8;

std::atomic<bool> watching{false};
std::atomic<int> unwiped{0};

bool HoldsRunOf(const char* secret, const unsigned char* p, size_t n) {
  const size_t len = std::strlen(secret);
  for (size_t i = 0; i + kRun <= len; ++i) {
    if (memmem(p, n, secret + i, kRun) != nullptr) return true;
  }
  return false;
}

void Scan(void* p, size_t n) {
  if (p == nullptr || !watching.load()) return;
  const auto* bytes = static_cast<const unsigned char*>(p);
  if (HoldsRunOf(kSecret, bytes, n) || HoldsRunOf(kPassword, bytes, n)) {
    unwiped.fetch_add(1);
  }
}

void* ZeroedMalloc(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p != nullptr) std::memset(p, 0, malloc_usable_size(p));
  return p;
}

void ScannedFree(void* p) {
  if (p == nullptr) return;
  Scan(p, malloc_usable_size(p));
  std::free(p);
}

// libcurl's allocator.
void* CurlMalloc(size_t n) { return ZeroedMalloc(n); }
void CurlFree(void* p) { ScannedFree(p); }
void* CurlRealloc(void* p, size_t n) {
  if (p == nullptr) return ZeroedMalloc(n);
  void* q = ZeroedMalloc(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, std::min(n, malloc_usable_size(p)));
  ScannedFree(p);
  return q;
}
char* CurlStrdup(const char* s) {
  const size_t n = std::strlen(s) + 1;
  auto* p = static_cast<char*>(ZeroedMalloc(n));
  if (p != nullptr) std::memcpy(p, s, n);
  return p;
}
void* CurlCalloc(size_t count, size_t size) { return ZeroedMalloc(count * size); }

}  // namespace

void* operator new(size_t n) {
  void* p = ZeroedMalloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { ScannedFree(p); }
void operator delete[](void* p) noexcept { ScannedFree(p); }
void operator delete(void* p, size_t) noexcept { ScannedFree(p); }
void operator delete[](void* p, size_t) noexcept { ScannedFree(p); }

namespace treezor::broker {
namespace {

class TokenRequestMemoryTest : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(curl_global_init_mem(CURL_GLOBAL_DEFAULT, &CurlMalloc, &CurlFree,
                                   &CurlRealloc, &CurlStrdup, &CurlCalloc),
              CURLE_OK);
  }

  void SetUp() override {
    dir_ = ::testing::TempDir() + "token_request_memory_test";
    mkdir(dir_.c_str(), 0700);
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
    unwiped.store(0);
    watching.store(true);
    {
      absl::StatusOr<TokenRequest> request = BuildTokenRequest(tenant, fetch);
      EXPECT_TRUE(request.ok()) << request.status();
      if (request.ok()) {
        absl::StatusOr<EncodedBody> body =
            EncodeBody(curl.get(), tenant, request->params);
        EXPECT_TRUE(body.ok()) << body.status();
      }
    }
    watching.store(false);
    return unwiped.load();
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
  watching.store(true);
  unwiped.store(0);
  { std::string copy = absl::StrCat(kSecret, " ", GetParam()); }
  watching.store(false);
  EXPECT_EQ(unwiped.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Encodings, TokenRequestMemoryTest,
                         ::testing::Values("form", "multipart", "json"));

}  // namespace
}  // namespace treezor::broker
