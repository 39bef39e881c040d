// The treezor-token binary, run as a script would run it, against a real
// broker (BrokerHarness): every command and format, connection settings from
// flags and the environment, and the exit code of each error class.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "client/token_digest.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tests/client/subprocess.h"
#include "tests/testing/broker_harness.h"
#include "tests/testing/status_matchers.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

#ifndef TZB_CLI_PATH
#error "TZB_CLI_PATH: the treezor-token binary"
#endif

namespace treezor::client {
namespace {

namespace v1 = ::treezor::broker::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;
using ::treezor::broker::testing::BrokerHarness;
using testing::Subprocess;

constexpr absl::Duration kWait = absl::Seconds(10);

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(harness_.Start()); }

  // The four TREEZOR_BROKER_* variables for a caller.
  std::map<std::string, std::string> Env(const std::string& caller = "payments") {
    const auto files = harness_.CallerFiles(caller);
    return {{"TREEZOR_BROKER_ADDR", harness_.target()},
            {"TREEZOR_BROKER_CA", harness_.internal_ca_file()},
            {"TREEZOR_BROKER_CERT", files.cert_file},
            {"TREEZOR_BROKER_KEY", files.key_file}};
  }

  Subprocess::Result Run(std::vector<std::string> args,
                         std::map<std::string, std::string> env,
                         std::string stdin_data = "") {
    return Subprocess::Run(TZB_CLI_PATH, {.args = std::move(args),
                                          .env = std::move(env),
                                          .stdin_data = std::move(stdin_data)});
  }
  Subprocess::Result Run(std::vector<std::string> args) {
    return Run(std::move(args), Env());
  }

  // What the broker serves now, through a raw stub.
  v1::GetTokenResponse BrokerToken(std::vector<std::string> scopes = {}) {
    auto stub = v1::TokenService::NewStub(harness_.Channel("payments"));
    grpc::ClientContext ctx;
    v1::GetTokenRequest request;
    request.set_tenant("acme");
    for (const auto& s : scopes) request.add_scopes(s);
    v1::GetTokenResponse response;
    const grpc::Status s = stub->GetToken(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  BrokerHarness harness_;
};

// One line on stderr: "treezor-token: <STATUS>: <message>".
MATCHER_P(IsErrorLine, status_name, "") {
  const std::string prefix = absl::StrCat("treezor-token: ", status_name, ": ");
  return absl::StartsWith(arg, prefix) && arg.size() > prefix.size() + 1 &&
         arg.back() == '\n' &&
         std::count(arg.begin(), arg.end(), '\n') == 1;
}

TEST_F(CliTest, GetPrintsTheToken) {
  const Subprocess::Result r = Run({"get", "--tenant", "acme"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, BrokerToken().access_token() + "\n");
}

TEST_F(CliTest, GetHeaderFormatIsAnAuthorizationHeader) {
  const Subprocess::Result r =
      Run({"get", "--tenant", "acme", "--format", "header"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Bearer " + BrokerToken().access_token() + "\n");
}

TEST_F(CliTest, GetJsonFormatIsTheResponseAsJson) {
  const Subprocess::Result r =
      Run({"get", "--tenant", "acme", "--scope", "read_all", "--scope",
           "admin", "--format=json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(R"("expiresAt":")"));
  v1::GetTokenResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok())
      << r.out;
  EXPECT_EQ(parsed.access_token(),
            BrokerToken({"admin", "read_all"}).access_token());
  EXPECT_EQ(parsed.token_type(), "Bearer");
  EXPECT_EQ(parsed.tenant(), "acme");
  EXPECT_THAT(parsed.scopes(), ElementsAre("admin", "read_all"));
  EXPECT_EQ(parsed.expires_at().seconds(),
            absl::ToUnixSeconds(harness_.clock().Now() + absl::Hours(1)));
}

TEST_F(CliTest, ConnectionFlagsWorkWithoutTheEnvironmentAndOverrideIt) {
  const auto files = harness_.CallerFiles("payments");
  const std::vector<std::string> flags = {
      "get", "--tenant", "acme", "--addr", harness_.target(),
      "--ca", harness_.internal_ca_file(), "--cert", files.cert_file,
      "--key", files.key_file, "--timeout", "5s"};
  Subprocess::Result r = Run(flags, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // An environment pointing elsewhere loses to the flags.
  auto env = Env("intruder");
  env["TREEZOR_BROKER_ADDR"] = "127.0.0.1:1";
  r = Run(flags, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, BrokerToken().access_token() + "\n");
}

TEST_F(CliTest, GetWithMinTtl) {
  Subprocess::Result r = Run({"get", "--tenant", "acme", "--min-ttl", "5m"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Run({"get", "--tenant", "acme", "--min-ttl", "2h"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, IsErrorLine("OUT_OF_RANGE"));
}

TEST_F(CliTest, GetRejectedPrintsTheReplacement) {
  const std::string first = BrokerToken().access_token();
  Subprocess::Result r = Run({"get", "--tenant", "acme", "--rejected", first});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string replacement(absl::StripSuffix(r.out, "\n"));
  EXPECT_NE(replacement, first);
  EXPECT_EQ(replacement, BrokerToken().access_token());
  // Reports of one entry within renewal.rejectedTokenMinInterval (10 s) get
  // the current token without a fetch: let the interval pass.
  harness_.clock().Advance(absl::Seconds(10));
  // From stdin, as scripts should (a token on the command line shows in ps).
  r = Run({"get", "--tenant", "acme", "--rejected", "-"}, Env(),
          replacement + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out, replacement + "\n");
  EXPECT_EQ(r.out, BrokerToken().access_token() + "\n");
}

TEST_F(CliTest, WatchPrintsFingerprintAndExpiryPerToken) {
  auto p = Subprocess::Start(
      TZB_CLI_PATH, {.args = {"watch", "--tenant", "acme", "--count", "2"},
                     .env = Env()});
  ASSERT_NE(p, nullptr);
  const std::optional<std::string> first = p->ReadLine(kWait);
  ASSERT_TRUE(first.has_value());
  const v1::GetTokenResponse current = BrokerToken();
  EXPECT_EQ(*first,
            absl::StrCat("fingerprint=",
                         TokenFingerprint(current.access_token()),
                         " expires_at=",
                         absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                          absl::FromUnixSeconds(
                                              current.expires_at().seconds()),
                                          absl::UTCTimeZone())));
  harness_.clock().Advance(absl::Minutes(49));  // the broker renews
  const std::optional<std::string> second = p->ReadLine(kWait);
  ASSERT_TRUE(second.has_value());
  EXPECT_THAT(*second, MatchesRegex("fingerprint=[0-9a-f]{12} "
                                    "expires_at=[-0-9]+T[:0-9]+Z"));
  EXPECT_EQ(*second, absl::StrCat("fingerprint=",
                                  TokenFingerprint(BrokerToken().access_token()),
                                  second->substr(second->find(' '))));
  EXPECT_NE(*second, *first);
  const Subprocess::Result r = p->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");  // nothing after the two lines
}

TEST_F(CliTest, WatchShowsTheTokenOnlyWhenAsked) {
  const Subprocess::Result r = Run(
      {"watch", "--tenant", "acme", "--show-token", "--count", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(" token=" + BrokerToken().access_token() + "\n"));
}

TEST_F(CliTest, WatchEndsCleanlyOnSigterm) {
  auto p = Subprocess::Start(TZB_CLI_PATH,
                             {.args = {"watch", "--tenant", "acme"}, .env = Env()});
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->ReadLine(kWait).has_value());
  p->Signal(SIGTERM);
  const Subprocess::Result r = p->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CliTest, PermissionDeniedExitsThree) {
  Subprocess::Result r = Run({"get", "--tenant", "globex"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, IsErrorLine("PERMISSION_DENIED"));
  EXPECT_THAT(r.err, HasSubstr("globex"));  // the broker's message
  EXPECT_EQ(r.out, "");
  r = Run({"get", "--tenant", "acme"}, Env("intruder"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, IsErrorLine("PERMISSION_DENIED"));
  r = Run({"watch", "--tenant", "globex"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, IsErrorLine("PERMISSION_DENIED"));
}

TEST_F(CliTest, DeadlineExceededExitsFour) {
  harness_.treezor().HoldRequests();  // a cold scope set never arrives
  const absl::Time start = absl::Now();
  Subprocess::Result r =
      Run({"get", "--tenant", "acme", "--scope", "legal", "--timeout", "300ms"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, IsErrorLine("DEADLINE_EXCEEDED"));
  // Well below the CLI's default timeout (10 s), which a CLI ignoring
  // --timeout would run into; slack for a loaded machine and sanitizers.
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  r = Run({"watch", "--tenant", "acme", "--scope", "legal", "--timeout",
           "300ms"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, IsErrorLine("DEADLINE_EXCEEDED"));
  harness_.treezor().ReleaseRequests();
}

TEST_F(CliTest, UnavailableExitsFour) {
  const auto env = Env();
  harness_.StopBroker();
  Subprocess::Result r = Run({"get", "--tenant", "acme"}, env);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, IsErrorLine("UNAVAILABLE"));
  r = Run({"watch", "--tenant", "acme"}, env);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, IsErrorLine("UNAVAILABLE"));
}

TEST_F(CliTest, OtherErrorsExitOne) {
  Subprocess::Result r = Run({"get", "--tenant", "acme", "--scope", "read all"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, IsErrorLine("INVALID_ARGUMENT"));
  EXPECT_THAT(r.err, HasSubstr("scopes"));
  auto env = Env();
  env["TREEZOR_BROKER_CA"] = "/nonexistent/ca.crt";
  r = Run({"get", "--tenant", "acme"}, env);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, IsErrorLine("INVALID_ARGUMENT"));
  EXPECT_THAT(r.err, HasSubstr("/nonexistent/ca.crt"));
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"admin"},  // no subcommand
      {"admin", "frobnicate"},
      {"admin", "refresh"},  // no --tenant
      {"get"},            // no --tenant
      {"get", "--tenant"},
      {"get", "--tenant", "acme", "--bogus"},
      {"get", "--tenant", "acme", "stray"},
      {"get", "--tenant", "acme", "--format", "yaml"},
      {"get", "--tenant", "acme", "--min-ttl", "soon"},
      {"get", "--tenant", "acme", "--timeout", "0s"},
      {"watch", "--tenant", "acme", "--count", "none"},
      {"watch", "--tenant", "acme", "--show-token=yes"},
  };
  for (const auto& args : cases) {
    const Subprocess::Result r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_THAT(r.err, StartsWith("treezor-token: ")) << absl::StrJoin(args, " ");
    EXPECT_EQ(r.out, "");
  }
  // The connection must come from somewhere.
  const Subprocess::Result r = Run({"get", "--tenant", "acme"}, {});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("TREEZOR_BROKER_ADDR"));
}

TEST_F(CliTest, EveryCommandHasHelp) {
  for (const std::string command : {"get", "watch", "admin", "help", "version"}) {
    const Subprocess::Result r = Run({command, "--help"}, {});
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_THAT(r.out, StartsWith("Usage: treezor-token " + command)) << command;
    EXPECT_EQ(Run({"help", command}, {}).out, r.out) << command;
    EXPECT_EQ(Run({command, "-h"}, {}).out, r.out) << command;
  }
  const Subprocess::Result r = Run({"--help"}, {});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, StartsWith("Usage: treezor-token <command>"));
  for (const char* documented :
       {"TREEZOR_BROKER_ADDR", "TREEZOR_BROKER_CA", "TREEZOR_BROKER_CERT",
        "TREEZOR_BROKER_KEY", "Exit codes", "PERMISSION_DENIED"}) {
    EXPECT_THAT(r.out, HasSubstr(documented));
  }
}

TEST_F(CliTest, AdminListShowsEntriesAsJsonForAdminsOnly) {
  BrokerToken();  // acme's default entry exists
  Subprocess::Result r = Run({"admin", "list"}, Env("oncall"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(R"("tenant": "acme")"));
  EXPECT_THAT(r.out, HasSubstr(R"("state": "FRESH")"));
  EXPECT_THAT(r.out, Not(HasSubstr(BrokerToken().access_token())));
  r = Run({"admin", "list"}, Env("payments"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, IsErrorLine("PERMISSION_DENIED"));
}

TEST_F(CliTest, AdminRefreshRenewsAndPrintsTheNewFingerprint) {
  const std::string before = BrokerToken().access_token();
  const Subprocess::Result r =
      Run({"admin", "refresh", "--tenant", "acme"}, Env("oncall"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string after = BrokerToken().access_token();
  EXPECT_NE(after, before);
  EXPECT_THAT(r.out, StartsWith(absl::StrCat("fingerprint=",
                                             TokenFingerprint(after),
                                             " expires_at=")));
}

TEST_F(CliTest, AdminReloadReportsTheOutcome) {
  Subprocess::Result r = Run({"admin", "reload"}, Env("oncall"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(R"("applied": true)"));
  ::treezor::broker::testing::WriteFileOrDie(harness_.config_path(), "{\"bogus\": 1}");
  r = Run({"admin", "reload"}, Env("oncall"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, IsErrorLine("FAILED_PRECONDITION"));
  EXPECT_THAT(r.err, HasSubstr("bogus"));
}

TEST_F(CliTest, VersionIsPrinted) {
  for (const std::string arg : {"--version", "version"}) {
    const Subprocess::Result r = Run({arg}, {});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_THAT(r.out, MatchesRegex("treezor-token [0-9]+\\.[0-9]+\\.[0-9]+\n"));
  }
}

}  // namespace
}  // namespace treezor::client
