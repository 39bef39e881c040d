#include "server/token_request_body.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::Contains;
using ::testing::Not;
using ::treezor::broker::testing::StatusIs;

Params SomeParams() {
  Params params;
  params.push_back({"grant_type", Secret("client_credentials")});
  params.push_back({"client_id", Secret("1234")});
  params.push_back({"client_secret", Secret("a b/c+d\"e\\")});
  params.push_back({"scope", Secret("admin read_all")});
  return params;
}

v1::Tenant TenantEncoding(const std::string& encoding) {
  v1::Tenant tenant;
  tenant.set_name("acme");
  tenant.set_request_encoding(encoding);
  return tenant;
}

std::vector<std::string> Headers(const EncodedBody& body) {
  std::vector<std::string> headers;
  for (const curl_slist* h = body.headers.get(); h != nullptr; h = h->next) {
    headers.emplace_back(h->data);
  }
  return headers;
}

class EncodeBodyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    internal::InitCurlOnce();
    curl_.reset(curl_easy_init());
    ASSERT_NE(curl_, nullptr);
  }
  internal::CurlHandle curl_;
};

TEST_F(EncodeBodyTest, FormIsUrlEncodedInParameterOrder) {
  for (const char* encoding : {"", "form"}) {
    ASSERT_OK_AND_ASSIGN(
        EncodedBody body,
        EncodeBody(curl_.get(), TenantEncoding(encoding), SomeParams()));
    EXPECT_EQ(body.data.view(),
              "grant_type=client_credentials&client_id=1234&"
              "client_secret=a%20b%2Fc%2Bd%22e%5C&scope=admin%20read_all");
    EXPECT_EQ(body.mime, nullptr);
    EXPECT_THAT(Headers(body),
                Contains("Content-Type: application/x-www-form-urlencoded"));
    EXPECT_THAT(Headers(body), Contains("Accept: application/json"));
    EXPECT_THAT(Headers(body), Contains("Expect:"));
  }
}

TEST_F(EncodeBodyTest, JsonIsOneObjectOfStrings) {
  ASSERT_OK_AND_ASSIGN(
      EncodedBody body,
      EncodeBody(curl_.get(), TenantEncoding("json"), SomeParams()));
  EXPECT_EQ(body.data.view(),
            R"({"grant_type":"client_credentials","client_id":"1234",)"
            R"("client_secret":"a b/c+d\"e\\","scope":"admin read_all"})");
  EXPECT_THAT(Headers(body), Contains("Content-Type: application/json"));
}

TEST_F(EncodeBodyTest, MultipartHasOnePartPerParameterFromOwnedBuffers) {
  ASSERT_OK_AND_ASSIGN(
      EncodedBody body,
      EncodeBody(curl_.get(), TenantEncoding("multipart"), SomeParams()));
  ASSERT_NE(body.mime, nullptr);
  EXPECT_TRUE(body.data.empty());
  ASSERT_EQ(body.parts.size(), 4u);
  EXPECT_EQ(body.parts[2]->bytes.view(), "a b/c+d\"e\\");
  // curl sets the multipart Content-Type (with its boundary) itself.
  EXPECT_THAT(Headers(body),
              Not(Contains(::testing::StartsWith("Content-Type:"))));
  EXPECT_THAT(Headers(body), Contains("Accept: application/json"));
}

TEST_F(EncodeBodyTest, UnknownEncodingNamesTheField) {
  EXPECT_THAT(EncodeBody(curl_.get(), TenantEncoding("xml"), SomeParams()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: unsupported requestEncoding \"xml\""));
}

}  // namespace
}  // namespace treezor::broker
