// The fake Treezor seen from a real HTTPS client (libcurl), as the broker
// will see it.
#include "tests/testing/fake_treezor.h"

#include <curl/curl.h>

#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/token_digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "tests/testing/cert_factory.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker::testing {
namespace {

using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(20);
using Params = std::map<std::string, std::string>;

// --- A small libcurl client

enum class Encoding { kForm, kMultipart, kJson };

struct HttpAnswer {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string headers;
  std::string body;
};

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct MimeDeleter {
  void operator()(curl_mime* m) const { curl_mime_free(m); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string FormBody(CURL* curl, const Params& fields) {
  std::vector<std::string> pairs;
  for (const auto& [key, value] : fields) {
    std::unique_ptr<char, decltype(&curl_free)> k(
        curl_easy_escape(curl, key.data(), static_cast<int>(key.size())),
        &curl_free);
    std::unique_ptr<char, decltype(&curl_free)> v(
        curl_easy_escape(curl, value.data(), static_cast<int>(value.size())),
        &curl_free);
    pairs.push_back(absl::StrCat(k.get(), "=", v.get()));
  }
  return absl::StrJoin(pairs, "&");
}

std::string JsonBody(const Params& fields) {
  std::string out = "{";
  for (const auto& [key, value] : fields) {
    if (out.size() > 1) out.push_back(',');
    broker::internal::AppendJsonString(key, &out);
    out.push_back(':');
    broker::internal::AppendJsonString(value, &out);
  }
  return out + "}";
}

// POSTs `fields` to <base_url>/oauth/token, presenting `client` (if any) and
// trusting only `ca_file`.
HttpAnswer PostToken(const std::string& base_url, const Params& fields,
                     Encoding encoding, const CertPaths* client,
                     const std::string& ca_file) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  std::unique_ptr<curl_mime, MimeDeleter> mime;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  std::string body;
  HttpAnswer answer;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, (base_url + "/oauth/token").c_str());
  curl_easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30'000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (client != nullptr) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, client->cert_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, client->key_file.c_str());
  }
  switch (encoding) {
    case Encoding::kForm:
      body = FormBody(c, fields);
      break;
    case Encoding::kJson:
      body = JsonBody(fields);
      headers.reset(
          curl_slist_append(nullptr, "Content-Type: application/json"));
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
      break;
    case Encoding::kMultipart:
      mime.reset(curl_mime_init(c));
      for (const auto& [key, value] : fields) {
        curl_mimepart* part = curl_mime_addpart(mime.get());
        curl_mime_name(part, key.c_str());
        curl_mime_data(part, value.data(), value.size());
      }
      curl_easy_setopt(c, CURLOPT_MIMEPOST, mime.get());
      break;
  }
  if (encoding != Encoding::kMultipart) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &answer.headers);
  answer.code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

// The value of a top-level string or integer field of a flat JSON object.
std::optional<std::string> JsonField(const std::string& json,
                                     const std::string& key) {
  const std::regex re("\"" + key + "\":(\"([^\"]*)\"|(-?[0-9]+))");
  std::smatch m;
  if (!std::regex_search(json, m, re)) return std::nullopt;
  return m[2].matched ? m[2].str() : m[3].str();
}

// The decoded payload of a JWT.
std::string JwtPayload(const std::string& jwt) {
  std::vector<std::string> parts = absl::StrSplit(jwt, '.');
  std::string payload;
  if (parts.size() != 3 || !absl::WebSafeBase64Unescape(parts[1], &payload)) {
    return "";
  }
  return payload;
}

// --- Fixture

class FakeTreezorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(CertFactory ca,
                         CertFactory::Create(dir_.path(), "Fake Treezor CA"));
    ASSERT_OK_AND_ASSIGN(
        server_cert_, ca.Issue("treezor", CertFactory::ServerLeaf("treezor")));
    ASSERT_OK_AND_ASSIGN(client_cert_,
                         ca.Issue("acme", {.common_name = "acme-broker"}));
    ca_ = std::make_unique<CertFactory>(std::move(ca));
  }

  FakeTreezor::Options Options() {
    FakeTreezor::Options options;
    options.cert_file = server_cert_.cert_file;
    options.key_file = server_cert_.key_file;
    options.client_ca_file = ca_->ca_cert_file();
    options.client_secret = "s3cret";
    options.username = "alice";
    options.password = "wonderland";
    options.clock = &clock_;
    return options;
  }

  void StartTreezor() { StartTreezor(Options()); }
  void StartTreezor(FakeTreezor::Options options) {
    ASSERT_OK_AND_ASSIGN(treezor_, FakeTreezor::Start(std::move(options)));
  }

  HttpAnswer Post(const Params& fields, Encoding encoding = Encoding::kForm) {
    return PostToken(treezor_->base_url(), fields, encoding, &client_cert_,
                     ca_->ca_cert_file());
  }

  static Params ClientCredentials(const std::string& secret = "s3cret") {
    return {{"grant_type", "client_credentials"},
            {"client_id", "1234"},
            {"client_secret", secret},
            {"scope", "read_only"}};
  }
  static Params PasswordGrant() {
    return {{"grant_type", "password"},
            {"client_id", "1234"},
            {"client_secret", "s3cret"},
            {"username", "alice"},
            {"password", "wonderland"}};
  }
  static Params Refresh(const std::string& refresh_token) {
    return {{"grant_type", "refresh_token"},
            {"client_id", "1234"},
            {"refresh_token", refresh_token}};
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<CertFactory> ca_;
  CertPaths server_cert_;
  CertPaths client_cert_;
  std::unique_ptr<FakeTreezor> treezor_;
};

// --- Mutual TLS

TEST_F(FakeTreezorTest, RefusesClientWithoutCertificate) {
  StartTreezor();
  HttpAnswer answer = PostToken(treezor_->base_url(), ClientCredentials(),
                                Encoding::kForm, nullptr, ca_->ca_cert_file());

  EXPECT_NE(answer.code, CURLE_OK);
  EXPECT_EQ(treezor_->request_count(), 0);
}

TEST_F(FakeTreezorTest, RefusesCertificateFromAnotherCa) {
  StartTreezor();
  ASSERT_OK_AND_ASSIGN(CertFactory other,
                       CertFactory::Create(dir_.path(), "Other CA"));
  ASSERT_OK_AND_ASSIGN(CertPaths stranger,
                       other.Issue("stranger", {.common_name = "stranger"}));

  HttpAnswer answer =
      PostToken(treezor_->base_url(), ClientCredentials(), Encoding::kForm,
                &stranger, ca_->ca_cert_file());

  EXPECT_NE(answer.code, CURLE_OK);
  EXPECT_EQ(treezor_->request_count(), 0);
}

TEST_F(FakeTreezorTest, RecordsClientCertificateCommonName) {
  StartTreezor();
  ASSERT_EQ(Post(ClientCredentials()).status, 200);

  EXPECT_THAT(
      treezor_->requests(),
      ElementsAre(Field(&ReceivedRequest::client_cert_cn, "acme-broker")));
}

// --- Grants

TEST_F(FakeTreezorTest, ClientCredentialsGrantIssuesBearerJwt) {
  StartTreezor();
  HttpAnswer answer = Post(ClientCredentials());

  ASSERT_EQ(answer.code, CURLE_OK);
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(JsonField(answer.body, "token_type"), "Bearer");
  EXPECT_EQ(JsonField(answer.body, "expires_in"), "3600");
  EXPECT_EQ(JsonField(answer.body, "refresh_token"), std::nullopt);
  std::optional<std::string> jwt = JsonField(answer.body, "access_token");
  ASSERT_TRUE(jwt.has_value());
  EXPECT_EQ(*jwt, treezor_->last_access_token());
  const std::string payload = JwtPayload(*jwt);
  const int64_t now = absl::ToUnixSeconds(clock_.Now());
  EXPECT_EQ(JsonField(payload, "iat"), absl::StrCat(now));
  EXPECT_EQ(JsonField(payload, "exp"), absl::StrCat(now + 3600));
  EXPECT_EQ(JsonField(payload, "sub"), "1234");
  EXPECT_EQ(JsonField(payload, "scope"), "read_only");
  EXPECT_EQ(treezor_->token_count(), 1);
}

TEST_F(FakeTreezorTest, JwtExpCanDifferFromExpiresIn) {
  FakeTreezor::Options options = Options();
  options.token_lifetime = absl::Minutes(30);
  options.jwt_exp_offset = -absl::Minutes(10);
  StartTreezor(std::move(options));

  HttpAnswer answer = Post(ClientCredentials());

  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(JsonField(answer.body, "expires_in"), "1800");
  const std::string payload = JwtPayload(treezor_->last_access_token());
  EXPECT_EQ(JsonField(payload, "exp"),
            absl::StrCat(absl::ToUnixSeconds(clock_.Now()) + 1200));
}

TEST_F(FakeTreezorTest, EveryTokenIsDifferent) {
  StartTreezor();
  HttpAnswer first = Post(ClientCredentials());
  HttpAnswer second = Post(ClientCredentials());

  ASSERT_EQ(first.status, 200);
  ASSERT_EQ(second.status, 200);
  EXPECT_NE(JsonField(first.body, "access_token"),
            JsonField(second.body, "access_token"));
  EXPECT_EQ(treezor_->token_count(), 2);
}

TEST_F(FakeTreezorTest, AcceptsFormMultipartAndJsonRequests) {
  StartTreezor();
  EXPECT_EQ(Post(ClientCredentials(), Encoding::kForm).status, 200);
  EXPECT_EQ(Post(ClientCredentials(), Encoding::kMultipart).status, 200);
  EXPECT_EQ(Post(ClientCredentials(), Encoding::kJson).status, 200);

  std::vector<ReceivedRequest> requests = treezor_->requests();
  ASSERT_THAT(requests, SizeIs(3));
  EXPECT_EQ(requests[0].content_type, "application/x-www-form-urlencoded");
  EXPECT_EQ(requests[1].content_type, "multipart/form-data");
  EXPECT_EQ(requests[2].content_type, "application/json");
  EXPECT_THAT(requests,
              Each(Field(&ReceivedRequest::params, ClientCredentials())));
  EXPECT_THAT(requests,
              Each(Field(&ReceivedRequest::grant_type, "client_credentials")));
}

TEST_F(FakeTreezorTest, WrongSecretIsInvalidClient) {
  StartTreezor();
  HttpAnswer answer = Post(ClientCredentials("wrong"));

  EXPECT_EQ(answer.status, 401);
  EXPECT_EQ(JsonField(answer.body, "error"), "invalid_client");
  EXPECT_NE(JsonField(answer.body, "error_description"), std::nullopt);
  EXPECT_EQ(treezor_->token_count(), 0);
  EXPECT_THAT(treezor_->requests(),
              ElementsAre(Field(&ReceivedRequest::error, "invalid_client")));
}

TEST_F(FakeTreezorTest, RotatedSecretReplacesTheOldOne) {
  StartTreezor();
  treezor_->SetClientSecret("new-secret");

  EXPECT_EQ(Post(ClientCredentials("s3cret")).status, 401);
  EXPECT_EQ(Post(ClientCredentials("new-secret")).status, 200);
}

TEST_F(FakeTreezorTest, MissingGrantTypeIsUnsupported) {
  StartTreezor();
  Params params = ClientCredentials();
  params.erase("grant_type");
  HttpAnswer answer = Post(params);

  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(JsonField(answer.body, "error"), "unsupported_grant_type");
}

TEST_F(FakeTreezorTest, RefreshTokensRotate) {
  StartTreezor();
  HttpAnswer login = Post(PasswordGrant());
  ASSERT_EQ(login.status, 200) << login.body;
  const std::optional<std::string> first =
      JsonField(login.body, "refresh_token");
  ASSERT_TRUE(first.has_value());

  HttpAnswer refreshed = Post(Refresh(*first));
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  const std::optional<std::string> second =
      JsonField(refreshed.body, "refresh_token");
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(*second, *first);
  EXPECT_EQ(*second, treezor_->last_refresh_token());

  HttpAnswer reused = Post(Refresh(*first));
  EXPECT_EQ(reused.status, 400);
  EXPECT_EQ(JsonField(reused.body, "error"), "invalid_grant");
  EXPECT_EQ(Post(Refresh(*second)).status, 200);
}

TEST_F(FakeTreezorTest, InvalidatedRefreshTokensAreRefused) {
  StartTreezor();
  HttpAnswer login = Post(PasswordGrant());
  ASSERT_EQ(login.status, 200) << login.body;
  treezor_->InvalidateRefreshTokens();

  HttpAnswer answer = Post(Refresh(*JsonField(login.body, "refresh_token")));

  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(JsonField(answer.body, "error"), "invalid_grant");
}

TEST_F(FakeTreezorTest, PasswordGrantChecksTheUser) {
  StartTreezor();
  Params params = PasswordGrant();
  params["password"] = "guess";
  HttpAnswer answer = Post(params);

  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(JsonField(answer.body, "error"), "invalid_grant");
}

// --- Faults

TEST_F(FakeTreezorTest, QueuedFaultsApplyOnePerRequestInOrder) {
  StartTreezor();
  treezor_->PushFault(FakeTreezor::Fault::Status(503));
  treezor_->PushFault(FakeTreezor::Fault::TooManyRequests(7));

  EXPECT_EQ(Post(ClientCredentials()).status, 503);
  HttpAnswer limited = Post(ClientCredentials());
  EXPECT_EQ(limited.status, 429);
  EXPECT_THAT(limited.headers, HasSubstr("Retry-After: 7"));
  EXPECT_EQ(Post(ClientCredentials()).status, 200);
  EXPECT_EQ(treezor_->token_count(), 1);
}

TEST_F(FakeTreezorTest, PersistentFaultAppliesWhileQueueIsEmpty) {
  StartTreezor();
  treezor_->SetPersistentFault(
      FakeTreezor::Fault::Of(FakeTreezor::Fault::kGarbage));
  treezor_->PushFault(FakeTreezor::Fault::Status(502));

  EXPECT_EQ(Post(ClientCredentials()).status, 502);
  HttpAnswer garbage = Post(ClientCredentials());
  EXPECT_EQ(garbage.status, 200);
  EXPECT_EQ(JsonField(garbage.body, "access_token"), std::nullopt);
  treezor_->SetPersistentFault(std::nullopt);
  EXPECT_EQ(Post(ClientCredentials()).status, 200);
}

TEST_F(FakeTreezorTest, MalformedAnswerFaults) {
  StartTreezor();
  using Fault = FakeTreezor::Fault;
  for (Fault::Kind kind :
       {Fault::kEmpty200, Fault::kBadTokenType, Fault::kZeroExpiresIn,
        Fault::kInvalidClient, Fault::kTreezorErrorShape}) {
    treezor_->PushFault(Fault::Of(kind));
  }

  HttpAnswer empty = Post(ClientCredentials());
  EXPECT_EQ(empty.status, 200);
  EXPECT_THAT(empty.body, IsEmpty());
  EXPECT_EQ(JsonField(Post(ClientCredentials()).body, "token_type"), "MAC");
  EXPECT_EQ(JsonField(Post(ClientCredentials()).body, "expires_in"), "0");
  HttpAnswer refused = Post(ClientCredentials());
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(JsonField(refused.body, "error"), "invalid_client");
  HttpAnswer treezor_error = Post(ClientCredentials());
  EXPECT_EQ(treezor_error.status, 400);
  EXPECT_THAT(treezor_error.body,
              HasSubstr(R"({"errors":[{"type":"invalid_request",)"));
  EXPECT_THAT(treezor_error.body, HasSubstr(R"("docUrl":)"));
  EXPECT_EQ(treezor_->token_count(), 0);
}

TEST_F(FakeTreezorTest, DropConnectionClosesWithoutAnswer) {
  StartTreezor();
  treezor_->PushFault(
      FakeTreezor::Fault::Of(FakeTreezor::Fault::kDropConnection));

  HttpAnswer answer = Post(ClientCredentials());

  EXPECT_EQ(answer.code, CURLE_GOT_NOTHING) << curl_easy_strerror(answer.code);
  EXPECT_THAT(treezor_->requests(),
              ElementsAre(Field(&ReceivedRequest::dropped, true)));
  EXPECT_EQ(Post(ClientCredentials()).status, 200);
}

TEST_F(FakeTreezorTest, HangLastsUntilReleased) {
  StartTreezor();
  treezor_->PushFault(FakeTreezor::Fault::Hang());
  HttpAnswer answer;
  std::thread caller([&] { answer = Post(ClientCredentials()); });

  ASSERT_TRUE(treezor_->WaitForHanging(1, kWait));
  EXPECT_EQ(treezor_->token_count(), 0);
  treezor_->ReleaseHangs();
  caller.join();

  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(treezor_->token_count(), 1);
}

TEST_F(FakeTreezorTest, HangCanEndInADrop) {
  StartTreezor();
  treezor_->PushFault(
      FakeTreezor::Fault::Hang(absl::Milliseconds(50), /*then_drop=*/true));

  HttpAnswer answer = Post(ClientCredentials());

  EXPECT_EQ(answer.code, CURLE_GOT_NOTHING) << curl_easy_strerror(answer.code);
}

// --- The gate

TEST_F(FakeTreezorTest, GateHoldsConcurrentRequestsUntilReleased) {
  StartTreezor();
  treezor_->HoldRequests();
  constexpr int kCallers = 16;  // more than httplib's default pool of 8
  std::vector<HttpAnswer> answers(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] { answers[i] = Post(ClientCredentials()); });
  }

  ASSERT_TRUE(treezor_->WaitForHeld(kCallers, kWait));
  EXPECT_EQ(treezor_->request_count(), kCallers);
  EXPECT_EQ(treezor_->token_count(), 0);
  treezor_->ReleaseRequests();
  for (std::thread& t : callers) t.join();

  EXPECT_THAT(answers, Each(Field(&HttpAnswer::status, 200)));
  EXPECT_EQ(treezor_->max_in_flight(), kCallers);
  EXPECT_EQ(treezor_->token_count(), kCallers);
}

TEST_F(FakeTreezorTest, FaultPushedWhileHeldAppliesOnRelease) {
  StartTreezor();
  treezor_->HoldRequests();
  HttpAnswer answer;
  std::thread caller([&] { answer = Post(ClientCredentials()); });
  ASSERT_TRUE(treezor_->WaitForHeld(1, kWait));

  treezor_->PushFault(FakeTreezor::Fault::Status(500));
  treezor_->ReleaseRequests();
  caller.join();

  EXPECT_EQ(answer.status, 500);
}

TEST_F(FakeTreezorTest, StopReleasesHeldRequests) {
  StartTreezor();
  treezor_->HoldRequests();
  std::thread caller([&] { Post(ClientCredentials()); });
  ASSERT_TRUE(treezor_->WaitForHeld(1, kWait));

  treezor_->Stop();  // must not wait for a release that never comes
  caller.join();
}

TEST_F(FakeTreezorTest, WaitForRequestsTimesOut) {
  StartTreezor();
  EXPECT_FALSE(treezor_->WaitForRequests(1, absl::Milliseconds(10)));
}

TEST_F(FakeTreezorTest, ObserverSeesEveryAnswerWithoutTheToken) {
  std::vector<ReceivedRequest> seen;
  Mutex mu;
  FakeTreezor::Options options = Options();
  options.on_answered = [&](const ReceivedRequest& r) {
    MutexLock lock(&mu);
    seen.push_back(r);
  };
  StartTreezor(std::move(options));
  ASSERT_EQ(Post(ClientCredentials()).status, 200);
  treezor_->Stop();

  MutexLock lock(&mu);
  ASSERT_THAT(seen, SizeIs(1));
  EXPECT_EQ(seen[0].http_status, 200);
  EXPECT_EQ(seen[0].access_token_fingerprint,
            TokenFingerprint(treezor_->last_access_token()));
}

TEST_F(FakeTreezorTest, StartFailsOnMissingCertificate) {
  FakeTreezor::Options options = Options();
  options.cert_file = dir_.File("nope.crt");
  EXPECT_THAT(
      FakeTreezor::Start(std::move(options)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nope.crt")));
}

}  // namespace
}  // namespace treezor::broker::testing
