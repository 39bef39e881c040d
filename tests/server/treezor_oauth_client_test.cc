// TreezorOAuthClient against FakeTreezor: real HTTPS, real mutual TLS, real
// certificates. Each test states one rule of FetchResult's contract.
#include "server/treezor_oauth_client.h"

#include <stdlib.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/sync.h"
#include "common/token_digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "server/oauth_response.h"
#include "tests/testing/cert_factory.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_treezor.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::testing::StartsWith;
using ::treezor::broker::testing::CertFactory;
using ::treezor::broker::testing::CertPaths;
using ::treezor::broker::testing::FakeClock;
using ::treezor::broker::testing::FakeTreezor;
using ::treezor::broker::testing::IsOk;
using ::treezor::broker::testing::ReceivedRequest;
using ::treezor::broker::testing::StatusIs;
using ::treezor::broker::testing::TempDir;

constexpr char kSecret[] = "fake-client-secret";
constexpr char kUsername[] = "ops@acme.example";
constexpr char kPassword[] = "correct horse battery staple";

void WriteFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

// Collects log lines for the test's lifetime.
class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](absl::string_view line) {
      MutexLock lock(&mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { SetLogSink(nullptr); }

  std::vector<std::string> lines() const {
    MutexLock lock(&mu_);
    return lines_;
  }
  std::string all() const { return absl::StrJoin(lines(), "\n"); }

 private:
  mutable Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

class TreezorOAuthClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(CertFactory ca,
                         CertFactory::Create(dir_.path(), "Treezor Test CA"));
    ca_.emplace(std::move(ca));
    ASSERT_OK_AND_ASSIGN(server_cert_,
                         ca_->Issue("treezor", CertFactory::ServerLeaf("treezor")));
    ASSERT_OK_AND_ASSIGN(client_cert_,
                         ca_->Issue("acme", {.common_name = "acme"}));
    ASSERT_OK_AND_ASSIGN(CertFactory other_ca,
                         CertFactory::Create(other_dir_.path(), "Other CA"));
    other_ca_.emplace(std::move(other_ca));
    WriteFile(secret_file(), absl::StrCat(kSecret, "\n"));
    WriteFile(dir_.File("username"), absl::StrCat(kUsername, "\n"));
    WriteFile(dir_.File("password"), absl::StrCat(kPassword, "\n"));
    StartTreezor({});
  }

  // (Re)starts the double; `customize` adjusts its options.
  void StartTreezor(std::function<void(FakeTreezor::Options&)> customize) {
    treezor_.reset();
    FakeTreezor::Options options{.cert_file = server_cert_.cert_file,
                                 .key_file = server_cert_.key_file,
                                 .client_ca_file = ca_->ca_cert_file(),
                                 .client_secret = kSecret,
                                 .username = kUsername,
                                 .password = kPassword,
                                 .clock = &clock_};
    if (customize) customize(options);
    ASSERT_OK_AND_ASSIGN(treezor_, FakeTreezor::Start(std::move(options)));
  }

  std::string secret_file() const { return dir_.File("client_secret"); }

  v1::Tenant Tenant(absl::string_view encoding = "") const {
    v1::Tenant tenant;
    tenant.set_name("acme");
    tenant.set_base_url(treezor_->base_url());
    tenant.set_client_id("1234");
    tenant.set_client_secret_file(secret_file());
    tenant.set_request_encoding(std::string(encoding));
    tenant.mutable_upstream_tls()->set_ca_file(ca_->ca_cert_file());
    tenant.mutable_upstream_tls()->set_cert_file(client_cert_.cert_file);
    tenant.mutable_upstream_tls()->set_key_file(client_cert_.key_file);
    return tenant;
  }

  v1::Tenant PasswordTenant() const {
    v1::Tenant tenant = Tenant();
    tenant.set_grant_type("password");
    tenant.set_username_file(dir_.File("username"));
    tenant.set_password_file(dir_.File("password"));
    return tenant;
  }

  std::unique_ptr<TreezorOAuthClient> Client(
      v1::Tenant tenant,
      absl::Duration request_timeout = absl::Seconds(10)) {
    return std::make_unique<TreezorOAuthClient>(
        std::vector<v1::Tenant>{std::move(tenant)},
        UpstreamSettings{.connect_timeout = absl::Seconds(5),
                         .request_timeout = request_timeout},
        &clock_);
  }

  static FetchRequest Request(std::string refresh_token = "") {
    return {.tenant = "acme",
            .scopes = ScopeSet::FromList({"read_all", "admin"}),
            .refresh_token = std::move(refresh_token)};
  }

  ReceivedRequest LastReceived() const {
    const std::vector<ReceivedRequest> received = treezor_->requests();
    return received.empty() ? ReceivedRequest{} : received.back();
  }

  TempDir dir_;
  TempDir other_dir_;
  FakeClock clock_;
  std::optional<CertFactory> ca_;
  // An unrelated CA: neither Treezor nor the broker trusts it.
  std::optional<CertFactory> other_ca_;
  CertPaths server_cert_;
  CertPaths client_cert_;
  std::unique_ptr<FakeTreezor> treezor_;
};

// --- Success ---------------------------------------------------------------

struct EncodingCase {
  const char* name;
  const char* request_encoding;
  const char* content_type;
};

class TreezorOAuthClientEncodingTest
    : public TreezorOAuthClientTest,
      public ::testing::WithParamInterface<EncodingCase> {};

TEST_P(TreezorOAuthClientEncodingTest, ClientCredentialsGrantYieldsAToken) {
  auto client = Client(Tenant(GetParam().request_encoding));
  const FetchResult result = client->Fetch(Request());

  ASSERT_OK(result.token);
  EXPECT_EQ(result.token->access_token, treezor_->last_access_token());
  EXPECT_EQ(result.token->token_type, "Bearer");
  EXPECT_EQ(result.token->obtained_at, clock_.Now());
  EXPECT_EQ(result.token->expires_at, clock_.Now() + absl::Hours(1));
  EXPECT_EQ(result.token->refresh_token, "");
  EXPECT_FALSE(result.retry_after.has_value());

  const ReceivedRequest received = LastReceived();
  EXPECT_EQ(received.content_type, GetParam().content_type);
  EXPECT_EQ(received.grant_type, "client_credentials");
  EXPECT_EQ(received.client_cert_cn, "acme");
  EXPECT_EQ(received.params,
            (std::map<std::string, std::string>{
                {"grant_type", "client_credentials"},
                {"client_id", "1234"},
                {"client_secret", kSecret},
                {"scope", "admin read_all"}}));
}

INSTANTIATE_TEST_SUITE_P(
    AllEncodings, TreezorOAuthClientEncodingTest,
    ::testing::Values(
        EncodingCase{"DefaultIsForm", "", "application/x-www-form-urlencoded"},
        EncodingCase{"Form", "form", "application/x-www-form-urlencoded"},
        EncodingCase{"Multipart", "multipart", "multipart/form-data"},
        EncodingCase{"Json", "json", "application/json"}),
    [](const ::testing::TestParamInfo<EncodingCase>& info) {
      return info.param.name;
    });

TEST_F(TreezorOAuthClientTest, NoScopeParameterWhenNoScopesAreAsked) {
  auto client = Client(Tenant());
  ASSERT_OK(client->Fetch({.tenant = "acme"}).token);
  EXPECT_FALSE(LastReceived().params.contains("scope"));
}

TEST_F(TreezorOAuthClientTest, JwtExpEarlierThanExpiresInShortensTheToken) {
  treezor_->SetJwtExpOffset(-absl::Minutes(10));
  auto client = Client(Tenant());
  const FetchResult result = client->Fetch(Request());
  ASSERT_OK(result.token);
  EXPECT_EQ(result.token->expires_at, clock_.Now() + absl::Minutes(50));
}

TEST_F(TreezorOAuthClientTest, ReusesTheConnectionToTreezor) {
  StartTreezor([](FakeTreezor::Options& o) { o.keep_alive = true; });
  LogCapture logs;
  auto client = Client(Tenant());
  ASSERT_OK(client->Fetch(Request()).token);
  ASSERT_OK(client->Fetch(Request()).token);

  const std::vector<std::string> lines = logs.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr(R"("new_connections":"1")"));
  EXPECT_THAT(lines[1], HasSubstr(R"("new_connections":"0")"));
}

TEST_F(TreezorOAuthClientTest, IdleConnectionsAreBoundedAcrossTenants) {
  StartTreezor([](FakeTreezor::Options& o) { o.keep_alive = true; });
  LogCapture logs;
  // Ten tenants, room for three idle connections in all.
  std::vector<v1::Tenant> tenants;
  for (int i = 0; i < 10; ++i) {
    v1::Tenant t = Tenant();
    t.set_name(absl::StrCat("t", i));
    tenants.push_back(t);
  }
  TreezorOAuthClient client(tenants, {.max_idle_connections = 3}, &clock_);
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(client.Fetch({.tenant = absl::StrCat("t", i)}).token);
    EXPECT_LE(client.idle_connections(), 3u);
  }
  // The most recent tenant's connection is still there for its next request;
  // the oldest one's was closed.
  ASSERT_OK(client.Fetch({.tenant = "t9"}).token);
  ASSERT_OK(client.Fetch({.tenant = "t0"}).token);
  const std::vector<std::string> lines = logs.lines();
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_THAT(lines[10], HasSubstr(R"("new_connections":"0")"));
  EXPECT_THAT(lines[11], HasSubstr(R"("new_connections":"1")"));
}

TEST_F(TreezorOAuthClientTest, ResetConnectionsMakesTheNextRequestHandshakeAgain) {
  StartTreezor([](FakeTreezor::Options& o) { o.keep_alive = true; });
  LogCapture logs;
  auto client = Client(Tenant());
  ASSERT_OK(client->Fetch(Request()).token);
  client->ResetConnections("acme");  // e.g. its client certificate rotated
  ASSERT_OK(client->Fetch(Request()).token);
  const std::vector<std::string> lines = logs.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[1], HasSubstr(R"("new_connections":"1")"));
}

TEST_F(TreezorOAuthClientTest, LogsOneLinePerRequestNamingTheTokenByFingerprint) {
  LogCapture logs;
  auto client = Client(Tenant());
  const FetchResult result = client->Fetch(Request());
  ASSERT_OK(result.token);

  const std::vector<std::string> lines = logs.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0],
              AllOf(HasSubstr(R"("tenant":"acme")"),
                    HasSubstr(R"("grant_type":"client_credentials")"),
                    HasSubstr(R"("outcome":"ok")"),
                    HasSubstr(R"("http_status":"200")"),
                    HasSubstr(R"("duration_ms":)"),
                    HasSubstr(absl::StrCat(
                        R"("token_fp":")",
                        TokenFingerprint(result.token->access_token), R"(")")),
                    Not(HasSubstr(result.token->access_token)),
                    Not(HasSubstr(kSecret))));
}

// --- Mutual TLS ------------------------------------------------------------

TEST_F(TreezorOAuthClientTest, NoClientCertificateIsATlsError) {
  v1::Tenant tenant = Tenant();
  tenant.mutable_upstream_tls()->clear_cert_file();
  tenant.mutable_upstream_tls()->clear_key_file();
  auto client = Client(tenant);
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kUnavailable,
                       StartsWith("tenant acme: TLS error")));
}

TEST_F(TreezorOAuthClientTest, ClientCertificateFromAnotherCaIsATlsError) {
  ASSERT_OK_AND_ASSIGN(CertPaths stranger,
                       other_ca_->Issue("acme", {.common_name = "acme"}));
  v1::Tenant tenant = Tenant();
  tenant.mutable_upstream_tls()->set_cert_file(stranger.cert_file);
  tenant.mutable_upstream_tls()->set_key_file(stranger.key_file);
  auto client = Client(tenant);
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kUnavailable,
                       StartsWith("tenant acme: TLS error")));
}

TEST_F(TreezorOAuthClientTest, UntrustedServerCertificateIsATlsError) {
  v1::Tenant tenant = Tenant();
  tenant.mutable_upstream_tls()->set_ca_file(other_ca_->ca_cert_file());
  auto client = Client(tenant);
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kUnavailable,
                       StartsWith("tenant acme: TLS error")));
  EXPECT_EQ(treezor_->token_count(), 0);
}

// --- Retryable failures ----------------------------------------------------

TEST_F(TreezorOAuthClientTest, ServerErrorIsUnavailableNamingTheStatus) {
  treezor_->PushFault(FakeTreezor::Fault::Status(503));
  auto client = Client(Tenant());
  const FetchResult result = client->Fetch(Request());
  EXPECT_THAT(result.token, StatusIs(absl::StatusCode::kUnavailable,
                                     StartsWith("tenant acme: HTTP 503")));
  EXPECT_FALSE(result.retry_after.has_value());
  EXPECT_FALSE(result.refresh_token_rejected);
}

TEST_F(TreezorOAuthClientTest, TooManyRequestsCarriesRetryAfter) {
  treezor_->PushFault(FakeTreezor::Fault::TooManyRequests(7));
  auto client = Client(Tenant());
  const FetchResult result = client->Fetch(Request());
  EXPECT_THAT(result.token, StatusIs(absl::StatusCode::kUnavailable,
                                     StartsWith("tenant acme: HTTP 429")));
  EXPECT_THAT(result.retry_after, Optional(absl::Seconds(7)));
}

TEST_F(TreezorOAuthClientTest, UnusableSuccessfulAnswersAreUnavailable) {
  auto client = Client(Tenant());
  for (const auto& [fault, reason] :
       std::vector<std::pair<FakeTreezor::Fault::Kind, std::string>>{
           {FakeTreezor::Fault::kGarbage, "body is not a JSON object"},
           {FakeTreezor::Fault::kEmpty200, "empty body"},
           {FakeTreezor::Fault::kBadTokenType, "is not Bearer"},
           {FakeTreezor::Fault::kZeroExpiresIn,
            "expires_in missing or not positive"}}) {
    treezor_->PushFault(FakeTreezor::Fault::Of(fault));
    EXPECT_THAT(
        client->Fetch(Request()).token,
        StatusIs(absl::StatusCode::kUnavailable,
                 AllOf(StartsWith("tenant acme: unparsable token response: "),
                       HasSubstr(reason))));
  }
}

TEST_F(TreezorOAuthClientTest, DroppedConnectionIsANetworkError) {
  treezor_->PushFault(FakeTreezor::Fault::Of(FakeTreezor::Fault::kDropConnection));
  auto client = Client(Tenant());
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kUnavailable,
                       StartsWith("tenant acme: network error")));
}

TEST_F(TreezorOAuthClientTest, HangingTreezorIsATimeout) {
  treezor_->PushFault(FakeTreezor::Fault::Hang());
  auto client = Client(Tenant(), /*request_timeout=*/absl::Milliseconds(300));
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kUnavailable,
                       StartsWith("tenant acme: timeout")));
  treezor_->ReleaseHangs();
}

TEST_F(TreezorOAuthClientTest, NobodyListeningIsAConnectError) {
  v1::Tenant tenant = Tenant();
  treezor_->Stop();
  auto client = Client(tenant);
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kUnavailable,
                       StartsWith("tenant acme: connect error")));
}

// --- Refused credentials ---------------------------------------------------

TEST_F(TreezorOAuthClientTest, RefusedCredentialsAreFailedPreconditionWithoutSecret) {
  const std::string wrong_secret = "this-is-not-the-secret";
  WriteFile(secret_file(), wrong_secret);
  LogCapture logs;
  auto client = Client(Tenant());
  const FetchResult result = client->Fetch(Request());
  EXPECT_THAT(
      result.token,
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(StartsWith("tenant acme: Treezor refused the credentials: "
                                "invalid_client"),
                     Not(HasSubstr(wrong_secret)), Not(HasSubstr(kSecret)))));
  EXPECT_FALSE(result.refresh_token_rejected);
  EXPECT_THAT(logs.all(), AllOf(HasSubstr("FAILED_PRECONDITION"),
                                Not(HasSubstr(wrong_secret))));
}

TEST_F(TreezorOAuthClientTest, TreezorErrorShapeIsARefusal) {
  treezor_->PushFault(
      FakeTreezor::Fault::Of(FakeTreezor::Fault::kTreezorErrorShape));
  auto client = Client(Tenant());
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       StartsWith("tenant acme: Treezor refused the "
                                  "credentials: invalid_request")));
}

TEST_F(TreezorOAuthClientTest, RotatedSecretFileIsUsedByTheNextFetch) {
  auto client = Client(Tenant());
  ASSERT_OK(client->Fetch(Request()).token);

  treezor_->SetClientSecret("rotated-secret");
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("invalid_client")));

  WriteFile(secret_file(), "rotated-secret\n");
  ASSERT_OK(client->Fetch(Request()).token);
  EXPECT_EQ(LastReceived().params.at("client_secret"), "rotated-secret");
}

TEST_F(TreezorOAuthClientTest, SecretMayComeFromAnEnvironmentVariable) {
  ASSERT_EQ(setenv("TZB_TEST_CLIENT_SECRET", kSecret, 1), 0);
  v1::Tenant tenant = Tenant();
  tenant.clear_client_secret_file();
  tenant.set_client_secret_env("TZB_TEST_CLIENT_SECRET");
  auto client = Client(tenant);
  EXPECT_OK(client->Fetch(Request()).token);
  unsetenv("TZB_TEST_CLIENT_SECRET");
}

TEST_F(TreezorOAuthClientTest, MissingSecretIsFailedPreconditionNamingTheSource) {
  v1::Tenant from_file = Tenant();
  from_file.set_client_secret_file(dir_.File("no-such-secret"));
  EXPECT_THAT(Client(from_file)->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(StartsWith("tenant acme: clientSecretFile: "
                                        "cannot read "),
                             HasSubstr(dir_.File("no-such-secret")))));

  WriteFile(secret_file(), " \n");
  EXPECT_THAT(Client(Tenant())->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is empty")));

  v1::Tenant from_env = Tenant();
  from_env.clear_client_secret_file();
  from_env.set_client_secret_env("TZB_TEST_UNSET_VARIABLE");
  EXPECT_THAT(Client(from_env)->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("TZB_TEST_UNSET_VARIABLE")));
  EXPECT_EQ(treezor_->request_count(), 0);
}

// --- No part of a secret leaves (issue 10 item 7) ---------------------------
//
// Treezor (or something in front of it) quoting what it was sent: the secret
// in full, near the 200-character cut, URL-encoded, JSON-escaped, in part, as
// the error code. Callers get only the OAuth error code and the HTTP status;
// the free text reaches the request's log line, redacted and bounded; no
// 6-character run of the secret appears in either.

// Has characters every encoding changes: space, + / = & " \ # % ~ and é.
constexpr char kEchoedSecret[] = "Qz7+Vm/Kp&Lw=\"Tn\\Hx Rb#Jd%Fy~Gc\xc3\xa9Uo4";
constexpr size_t kRun = 6;

std::string PercentEncode(absl::string_view s, bool lower_hex,
                          bool plus_for_space) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out.push_back(static_cast<char>(c));
    } else if (c == ' ' && plus_for_space) {
      out.push_back('+');
    } else {
      if (lower_hex) {
        absl::StrAppendFormat(&out, "%%%02x", c);
      } else {
        absl::StrAppendFormat(&out, "%%%02X", c);
      }
    }
  }
  return out;
}

// `s` as a JSON string's content (no quotes), as the logger writes it.
std::string JsonEscaped(absl::string_view s) {
  std::string quoted;
  internal::AppendJsonString(s, &quoted);
  return quoted.substr(1, quoted.size() - 2);
}

// PHP's json_encode default: also "\/" and every non-ASCII character as
// \uXXXX (Treezor's API is PHP).
std::string PhpJsonEscaped(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '/') {
      out += "\\/";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == 0xc3 && i + 1 < s.size()) {  // 2-byte Latin-1 range
      absl::StrAppendFormat(&out, "\\u%04x",
                            ((c & 0x1f) << 6) | (s[++i] & 0x3f));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Fails when `text` holds a run of kRun characters of `secret` in any form
// it may take on the way out (raw, JSON-escaped as log lines escape it,
// URL-encoded).
void ExpectNoRunOf(absl::string_view secret, absl::string_view text,
                   absl::string_view where) {
  for (const std::string& form :
       {std::string(secret), JsonEscaped(secret),
        PercentEncode(secret, false, false)}) {
    for (size_t i = 0; i + kRun <= form.size(); ++i) {
      const absl::string_view run = absl::string_view(form).substr(i, kRun);
      EXPECT_FALSE(absl::StrContains(text, run))
          << where << " contains \"" << run << "\" of the secret: " << text;
    }
  }
}

struct EchoCase {
  const char* name;
  const char* request_encoding;
  // Builds the description (and, if set, the code) from the request.
  FakeTreezor::Echo description;
  FakeTreezor::Echo code = nullptr;
  int http_status = 401;
  bool treezor_shape = false;
};

void PrintTo(const EchoCase& c, std::ostream* os) { *os << c.name; }

std::string Secret(const FakeTreezor::EchoInput& in) {
  return in.params.at("client_secret");
}

class TreezorOAuthClientEchoTest
    : public TreezorOAuthClientTest,
      public ::testing::WithParamInterface<EchoCase> {};

TEST_P(TreezorOAuthClientEchoTest, NoRunOfTheSecretInTheStatusOrTheLog) {
  WriteFile(secret_file(), absl::StrCat(kEchoedSecret, "\n"));
  FakeTreezor::Fault fault = FakeTreezor::Fault::EchoRequest(
      GetParam().description, GetParam().code, GetParam().http_status);
  fault.treezor_shape = GetParam().treezor_shape;
  treezor_->PushFault(fault);
  LogCapture logs;
  auto client = Client(Tenant(GetParam().request_encoding));
  const FetchResult result = client->Fetch(Request());

  ASSERT_FALSE(result.token.ok());
  ASSERT_EQ(LastReceived().params.at("client_secret"), kEchoedSecret);
  const std::string message(result.token.status().message());
  ExpectNoRunOf(kEchoedSecret, message, "the status message");
  const std::vector<std::string> lines = logs.lines();
  ASSERT_EQ(lines.size(), 1u);
  ExpectNoRunOf(kEchoedSecret, lines[0], "the log line");
  // What was there to redact reached the log line, marked (the marker
  // itself may be cut at the bound: "[redac...").
  EXPECT_THAT(lines[0], HasSubstr("[re"));
  if (GetParam().http_status < 500) {  // 400, 401: a refusal
    EXPECT_THAT(result.token,
                StatusIs(absl::StatusCode::kFailedPrecondition, _));
  } else {
    EXPECT_THAT(result.token, StatusIs(absl::StatusCode::kUnavailable, _));
  }
}

// The cut at kMaxOAuthDescriptionChars (200, "..." included) falls inside
// the secret.
std::string NearTheCut(size_t filler) {
  return absl::StrCat(std::string(filler, 'x'), " ", kEchoedSecret, " end");
}

INSTANTIATE_TEST_SUITE_P(
    Echoes, TreezorOAuthClientEchoTest,
    ::testing::Values(
        EchoCase{"InFull", "",
                 [](const FakeTreezor::EchoInput& in) {
                   return absl::StrCat("bad client_secret ", Secret(in));
                 }},
        EchoCase{"NearTheCutAt185", "",
                 [](const FakeTreezor::EchoInput&) { return NearTheCut(185); }},
        EchoCase{"NearTheCutAt190", "",
                 [](const FakeTreezor::EchoInput&) { return NearTheCut(190); }},
        EchoCase{"NearTheCutAt193", "",
                 [](const FakeTreezor::EchoInput&) { return NearTheCut(193); }},
        EchoCase{"FormBodyAsSent", "form",
                 [](const FakeTreezor::EchoInput& in) { return in.raw_body; }},
        EchoCase{"UrlEncodedLowerHexAndPlus", "",
                 [](const FakeTreezor::EchoInput& in) {
                   return PercentEncode(Secret(in), true, true);
                 }},
        EchoCase{"JsonBodyAsSent", "json",
                 [](const FakeTreezor::EchoInput& in) { return in.raw_body; }},
        EchoCase{"JsonEscaped", "",
                 [](const FakeTreezor::EchoInput& in) {
                   return absl::StrCat("got \"", JsonEscaped(Secret(in)), "\"");
                 }},
        EchoCase{"PhpJsonEscaped", "",
                 [](const FakeTreezor::EchoInput& in) {
                   return PhpJsonEscaped(Secret(in));
                 }},
        // (httplib hands multipart bodies over parsed: the part, rebuilt.)
        EchoCase{"MultipartPartQuoted", "multipart",
                 [](const FakeTreezor::EchoInput& in) {
                   return absl::StrCat(
                       "Content-Disposition: form-data; "
                       "name=\"client_secret\"\r\n\r\n",
                       Secret(in), "\r\n");
                 }},
        EchoCase{"InParts", "",
                 [](const FakeTreezor::EchoInput& in) {
                   return absl::StrCat("starts ", Secret(in).substr(0, 6),
                                       ", then ", Secret(in).substr(9, 12),
                                       ", ends ", Secret(in).substr(26));
                 }},
        EchoCase{"AsTheErrorCode", "",
                 [](const FakeTreezor::EchoInput&) { return std::string(); },
                 [](const FakeTreezor::EchoInput& in) { return Secret(in); }},
        EchoCase{"InTreezorsShape", "",
                 [](const FakeTreezor::EchoInput& in) { return Secret(in); },
                 nullptr, 400, /*treezor_shape=*/true},
        EchoCase{"WithAServerError", "",
                 [](const FakeTreezor::EchoInput& in) { return Secret(in); },
                 nullptr, 503}),
    [](const ::testing::TestParamInfo<EchoCase>& info) {
      return info.param.name;
    });

TEST_F(TreezorOAuthClientTest, RefusalTellsCallersOnlyTheCodeAndHttpStatus) {
  treezor_->PushFault(FakeTreezor::Fault::EchoRequest(
      [](const FakeTreezor::EchoInput&) {
        return std::string("Client authentication failed");
      }));
  LogCapture logs;
  auto client = Client(Tenant());
  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: Treezor refused the credentials: "
                       "invalid_client (HTTP 401)"));
  // The free text is for the operator, in the request's log line.
  EXPECT_THAT(logs.all(),
              AllOf(HasSubstr(R"("oauth_error":"invalid_client")"),
                    HasSubstr(R"("oauth_error_description":"Client )"
                              R"(authentication failed")")));
}

TEST_F(TreezorOAuthClientTest, LoggedDescriptionIsBounded) {
  treezor_->PushFault(FakeTreezor::Fault::EchoRequest(
      [](const FakeTreezor::EchoInput&) { return std::string(5000, 'd'); }));
  LogCapture logs;
  auto client = Client(Tenant());
  ASSERT_FALSE(client->Fetch(Request()).token.ok());
  const std::vector<std::string> lines = logs.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(std::string(kMaxOAuthDescriptionChars - 3,
                                              'd') + "...\""));
  EXPECT_THAT(lines[0], Not(HasSubstr(std::string(kMaxOAuthDescriptionChars,
                                                  'd'))));
}

TEST_F(TreezorOAuthClientTest, EchoedPasswordNeverLeaves) {
  treezor_->PushFault(FakeTreezor::Fault::EchoRequest(
      [](const FakeTreezor::EchoInput& in) {
        return absl::StrCat("user ", in.params.at("username"), " password ",
                            in.params.at("password"), " body ", in.raw_body);
      },
      nullptr, 400));
  LogCapture logs;
  auto client = Client(PasswordTenant());
  const FetchResult result = client->Fetch(Request());
  ASSERT_FALSE(result.token.ok());
  ExpectNoRunOf(kPassword, result.token.status().message(), "the status");
  ExpectNoRunOf(kPassword, logs.all(), "the log");
}

TEST_F(TreezorOAuthClientTest, EchoedRefreshTokenNeverLeaves) {
  auto client = Client(PasswordTenant());
  const FetchResult first = client->Fetch(Request());
  ASSERT_OK(first.token);
  const std::string refresh_token = first.token->refresh_token;
  treezor_->PushFault(FakeTreezor::Fault::EchoRequest(
      [](const FakeTreezor::EchoInput& in) {
        const std::string token = in.params.at("refresh_token");
        return absl::StrCat("refresh token ", token, " (",
                            token.substr(token.size() / 2), ") is invalid");
      },
      [](const FakeTreezor::EchoInput&) { return std::string("invalid_grant"); },
      400));
  LogCapture logs;
  const FetchResult refreshed = client->Fetch(Request(refresh_token));
  EXPECT_THAT(refreshed.token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: Treezor refused the refresh token: "
                       "invalid_grant (HTTP 400)"));
  EXPECT_TRUE(refreshed.refresh_token_rejected);
  // The double's refresh tokens are "fake-refresh-<random id>": the id is
  // what must not leave ("refresh" is in the status message's own words).
  const absl::string_view id =
      absl::StripPrefix(refresh_token, "fake-refresh-");
  ASSERT_NE(id, refresh_token);
  ExpectNoRunOf(id, refreshed.token.status().message(), "the status");
  ExpectNoRunOf(id, logs.all(), "the log");
}

// --- Password grant and refresh tokens -------------------------------------

TEST_F(TreezorOAuthClientTest, PasswordGrantSendsUserCredentialsAndGetsARefreshToken) {
  auto client = Client(PasswordTenant());
  const FetchResult result = client->Fetch(Request());
  ASSERT_OK(result.token);
  EXPECT_EQ(result.token->refresh_token, treezor_->last_refresh_token());
  EXPECT_NE(result.token->refresh_token, "");

  const ReceivedRequest received = LastReceived();
  EXPECT_EQ(received.grant_type, "password");
  EXPECT_EQ(received.params.at("username"), kUsername);
  EXPECT_EQ(received.params.at("password"), kPassword);
  EXPECT_EQ(received.params.at("client_secret"), kSecret);
}

TEST_F(TreezorOAuthClientTest, RefreshTokenGrantRotatesTheRefreshToken) {
  auto client = Client(PasswordTenant());
  const FetchResult first = client->Fetch(Request());
  ASSERT_OK(first.token);

  const FetchResult second = client->Fetch(Request(first.token->refresh_token));
  ASSERT_OK(second.token);
  EXPECT_NE(second.token->refresh_token, "");
  EXPECT_NE(second.token->refresh_token, first.token->refresh_token);
  EXPECT_NE(second.token->access_token, first.token->access_token);

  const ReceivedRequest received = LastReceived();
  EXPECT_EQ(received.grant_type, "refresh_token");
  EXPECT_EQ(received.params.at("refresh_token"), first.token->refresh_token);
  EXPECT_FALSE(received.params.contains("client_secret"));
  EXPECT_FALSE(received.params.contains("password"));
}

TEST_F(TreezorOAuthClientTest, ReusedRefreshTokenIsRejected) {
  auto client = Client(PasswordTenant());
  const FetchResult first = client->Fetch(Request());
  ASSERT_OK(first.token);
  const std::string used = first.token->refresh_token;
  ASSERT_OK(client->Fetch(Request(used)).token);

  const FetchResult again = client->Fetch(Request(used));
  EXPECT_THAT(again.token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(StartsWith("tenant acme: Treezor refused the "
                                        "refresh token: invalid_grant"),
                             Not(HasSubstr(used)))));
  EXPECT_TRUE(again.refresh_token_rejected);
}

TEST_F(TreezorOAuthClientTest, InvalidatedRefreshChainIsRejected) {
  auto client = Client(PasswordTenant());
  const FetchResult first = client->Fetch(Request());
  ASSERT_OK(first.token);
  treezor_->InvalidateRefreshTokens();
  const FetchResult refreshed =
      client->Fetch(Request(first.token->refresh_token));
  EXPECT_THAT(refreshed.token, StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("invalid_grant")));
  EXPECT_TRUE(refreshed.refresh_token_rejected);
}

TEST_F(TreezorOAuthClientTest, InvalidClientOnRefreshDoesNotRejectTheChain) {
  treezor_->PushFault(FakeTreezor::Fault::Of(FakeTreezor::Fault::kInvalidClient));
  auto client = Client(PasswordTenant());
  const FetchResult result = client->Fetch(Request("some-refresh-token"));
  EXPECT_THAT(result.token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       StartsWith("tenant acme: Treezor refused the "
                                  "credentials: invalid_client")));
  EXPECT_FALSE(result.refresh_token_rejected);
}

// --- Retry-After ------------------------------------------------------------

TEST(ParseRetryAfter, AcceptsDeltaSeconds) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  EXPECT_THAT(internal::ParseRetryAfter("120", now),
              Optional(absl::Seconds(120)));
  EXPECT_THAT(internal::ParseRetryAfter(" 0 ", now),
              Optional(absl::ZeroDuration()));
}

TEST(ParseRetryAfter, AcceptsAnHttpDateAsTheDelayFromNow) {
  const absl::Time when = absl::FromUnixSeconds(1'800'000'000);
  const std::string date =
      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", when, absl::UTCTimeZone());
  EXPECT_THAT(internal::ParseRetryAfter(date, when - absl::Seconds(90)),
              Optional(absl::Seconds(90)));
  EXPECT_THAT(internal::ParseRetryAfter(date, when + absl::Hours(1)),
              Optional(absl::ZeroDuration()));
}

TEST(ParseRetryAfter, IgnoresAnythingElse) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  for (const char* value : {"", "-5", "soon", "12abc"}) {
    EXPECT_EQ(internal::ParseRetryAfter(value, now), std::nullopt) << value;
  }
}

// --- Tenants ---------------------------------------------------------------

TEST_F(TreezorOAuthClientTest, UnknownTenantIsNotFound) {
  auto client = Client(Tenant());
  EXPECT_THAT(client->Fetch({.tenant = "globex"}).token,
              StatusIs(absl::StatusCode::kNotFound,
                       StartsWith("tenant globex: ")));
  EXPECT_EQ(treezor_->request_count(), 0);
}

TEST_F(TreezorOAuthClientTest, UpdateTenantsAddsAndRemovesTenants) {
  auto client = Client(Tenant());
  v1::Tenant globex = Tenant();
  globex.set_name("globex");
  client->UpdateTenants({globex});

  EXPECT_THAT(client->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("acme")));
  EXPECT_OK(client->Fetch({.tenant = "globex"}).token);
}

TEST_F(TreezorOAuthClientTest, PlainHttpBaseUrlIsRefused) {
  v1::Tenant tenant = Tenant();
  tenant.set_base_url(absl::StrCat("http://localhost:", treezor_->port()));
  EXPECT_THAT(Client(tenant)->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("https")));
  EXPECT_THAT(Client(tenant)->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: baseUrl must be https://"));
  EXPECT_EQ(treezor_->request_count(), 0);
}

// Errors name config fields as the config file does (JSON names).
TEST_F(TreezorOAuthClientTest, UnsupportedSettingsNameTheirJsonFields) {
  v1::Tenant grant = Tenant();
  grant.set_grant_type("implicit");
  EXPECT_THAT(Client(grant)->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: unsupported grantType \"implicit\""));
  EXPECT_THAT(Client(Tenant("xml"))->Fetch(Request()).token,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tenant acme: unsupported requestEncoding \"xml\""));
  EXPECT_EQ(treezor_->request_count(), 0);
}

}  // namespace
}  // namespace treezor::broker
