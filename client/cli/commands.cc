#include "client/cli/commands.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/broker_channel.h"
#include "client/cli/arg_parser.h"
#include "client/token_client.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "common/token_digest.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "treezor/broker/v1/admin_service.grpc.pb.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::client::cli {
namespace {

namespace v1 = ::treezor::broker::v1;

constexpr char kProgram[] = "treezor-token";
constexpr absl::Duration kDefaultTimeout = absl::Seconds(10);

constexpr char kMainUsage[] = R"usage(Usage: treezor-token <command> [flags]

Gets Treezor access tokens from treezor-token-broker, over mTLS.

Commands:
  get       print a token, an Authorization header, or JSON
  watch     print a line for every token the broker pushes
  admin     list | refresh | reload: the broker's admin API (an admins[]
            identity's certificate is needed)
  help      help for a command (same as: treezor-token <command> --help)
  version   print the version

Connection flags, for every command (default: the environment variable):
  --addr HOST:PORT     the broker                          [TREEZOR_BROKER_ADDR]
  --ca FILE            the CA that signs the broker's cert [TREEZOR_BROKER_CA]
  --cert FILE          this caller's certificate           [TREEZOR_BROKER_CERT]
  --key FILE           its private key                     [TREEZOR_BROKER_KEY]
  --timeout DURATION   how long to wait for the broker (default 10s; e.g. 500ms)

Exit codes:
  0  success
  1  any other error (e.g. INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE)
  2  usage: unknown command or flag, missing or malformed value
  3  PERMISSION_DENIED or UNAUTHENTICATED: this certificate may not have that
  4  UNAVAILABLE or DEADLINE_EXCEEDED: the broker or Treezor cannot answer now
Errors are one line on stderr: "treezor-token: <STATUS>: <message>".
)usage";

constexpr char kGetUsage[] = R"usage(Usage: treezor-token get --tenant TENANT [--scope SCOPE ...] [--min-ttl DURATION]
                         [--format token|header|json] [--rejected TOKEN]
                         [connection flags]

Prints a valid Treezor access token for TENANT and the scope set.

  --tenant TENANT      the tenant, as configured in the broker (required)
  --scope SCOPE        a Treezor scope; repeat for several. Order and duplicates
                       do not matter. None: the tenant's default scopes.
  --min-ttl DURATION   the token must stay valid at least this long (e.g. 5m)
  --format FORMAT      token   the token alone (default)
                       header  "Bearer <token>", for an Authorization header
                       json    {"accessToken", "tokenType", "expiresAt",
                               "scopes", "tenant"}: GetTokenResponse as JSON,
                               as grpcurl prints it
  --rejected TOKEN     Treezor refused TOKEN (HTTP 401): have the broker replace
                       it and print the replacement. "-" reads TOKEN from stdin
                       (keeps it out of the process list).
  -h, --help           this help

Connection flags: see treezor-token --help.

Example:
  export TREEZOR_BROKER_ADDR=broker.internal:8443 TREEZOR_BROKER_CA=ca.crt \
         TREEZOR_BROKER_CERT=tls.crt TREEZOR_BROKER_KEY=tls.key
  curl -H "Authorization: $(treezor-token get --tenant acme --format header)" \
       https://acme.api.treezor.co/v1/users
)usage";

constexpr char kWatchUsage[] = R"usage(Usage: treezor-token watch --tenant TENANT [--scope SCOPE ...] [--show-token]
                           [--count N] [connection flags]

Opens a WatchToken stream: prints the current token at once, then one line per
renewed token, until interrupted (Ctrl-C) or the broker ends the stream:

  fingerprint=3f2a9c01b7e4 expires_at=2026-11-27T22:00:00Z

The fingerprint is the first 12 hex digits of the token's SHA-256, as in the
broker's audit log. --timeout bounds the wait for the first token only.

  --tenant TENANT      the tenant (required)
  --scope SCOPE        a Treezor scope; repeat for several (default: the
                       tenant's default scopes)
  --show-token         append " token=<token>" to each line
  --count N            exit (0) after N tokens
  -h, --help           this help

Connection flags: see treezor-token --help. Exit 0 when interrupted or after
--count tokens; otherwise the stream's status decides (e.g. 4 when the broker
shuts down: run it again).
)usage";

constexpr char kHelpUsage[] = R"usage(Usage: treezor-token help [COMMAND]

Prints the help for COMMAND, or the overview.
)usage";

constexpr char kVersionUsage[] = R"usage(Usage: treezor-token version

Prints the version of treezor-token.
)usage";

constexpr char kAdminUsage[] = R"usage(Usage: treezor-token admin <list|refresh|reload> [flags]

The broker's admin API (treezor.broker.v1.BrokerAdmin). The certificate must
carry an identity listed in the broker's admins[]; others get
PERMISSION_DENIED (exit 3).

  admin list [--tenant TENANT]
      every cached (tenant, scope set): state, expiry, last/next renewal,
      last error, upstream requests, idle time — as JSON; never a token
  admin refresh --tenant TENANT [--scope SCOPE ...]
      renew that token now; prints "fingerprint=... expires_at=..."
  admin reload
      re-read the broker's config file; prints the outcome as JSON and exits
      1 if the new config was rejected (the old one stays in force)

Takes the connection flags (see treezor-token --help).
)usage";

void PrintError(const absl::Status& status) {
  std::cerr << kProgram << ": " << absl::StatusCodeToString(status.code())
            << ": " << status.message() << std::endl;
}

int Fail(const absl::Status& status) {
  PrintError(status);
  return ExitCodeFor(status.code());
}

struct Command {
  const char* name;
  const char* usage;
  bool connects;  // takes the connection flags
  std::vector<FlagSpec> flags;
  int (*run)(const Command& command, const ParsedFlags& flags);
};

int UsageError(const Command& command, absl::string_view message) {
  std::cerr << kProgram << ": " << command.name << ": " << message
            << " (see " << kProgram << " " << command.name << " --help)"
            << std::endl;
  return kExitUsage;
}

std::string EnvOr(const ParsedFlags& flags, const std::string& flag,
                  const char* env) {
  if (std::optional<std::string> v = flags.Get(flag)) return *v;
  const char* value = std::getenv(env);
  return value != nullptr ? value : "";
}

struct Connection {
  BrokerConnection broker;
  absl::Duration timeout = kDefaultTimeout;
};

// A usage error message, or the connection.
absl::StatusOr<Connection> ConnectionFrom(const ParsedFlags& flags) {
  Connection c;
  const struct {
    const char* flag;
    const char* env;
    std::string* field;
  } fields[] = {
      {"addr", "TREEZOR_BROKER_ADDR", &c.broker.address},
      {"ca", "TREEZOR_BROKER_CA", &c.broker.ca_file},
      {"cert", "TREEZOR_BROKER_CERT", &c.broker.cert_file},
      {"key", "TREEZOR_BROKER_KEY", &c.broker.key_file},
  };
  for (const auto& f : fields) {
    *f.field = EnvOr(flags, f.flag, f.env);
    if (f.field->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", f.flag, " (or ", f.env, ") is required"));
    }
  }
  if (std::optional<std::string> t = flags.Get("timeout")) {
    if (!absl::ParseDuration(*t, &c.timeout) ||
        c.timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--timeout: \"", *t, "\" is not a positive duration (e.g. 10s)"));
    }
  }
  return c;
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

v1::GetTokenResponse ToResponse(const Token& token) {
  v1::GetTokenResponse r;
  r.set_access_token(token.access_token);
  r.set_token_type(token.token_type);
  ToProtoTimestamp(token.expires_at, r.mutable_expires_at());
  for (const std::string& s : token.scopes) r.add_scopes(s);
  r.set_tenant(token.tenant);
  return r;
}

int RunGet(const Command& command, const ParsedFlags& flags) {
  absl::StatusOr<Connection> connection = ConnectionFrom(flags);
  if (!connection.ok()) return UsageError(command, connection.status().message());
  const std::optional<std::string> tenant = flags.Get("tenant");
  if (!tenant.has_value()) return UsageError(command, "--tenant is required");
  CallOptions call;
  call.timeout = connection->timeout;
  if (std::optional<std::string> m = flags.Get("min-ttl")) {
    if (!absl::ParseDuration(*m, &call.min_ttl) ||
        call.min_ttl < absl::ZeroDuration()) {
      return UsageError(command, absl::StrCat("--min-ttl: \"", *m,
                                              "\" is not a duration (e.g. 5m)"));
    }
  }
  const std::string format = flags.Get("format").value_or("token");
  if (format != "token" && format != "header" && format != "json") {
    return UsageError(command, absl::StrCat("--format: \"", format,
                                            "\" is not token, header or json"));
  }
  std::optional<std::string> rejected = flags.Get("rejected");
  if (rejected == "-") {
    rejected = std::string(std::istreambuf_iterator<char>(std::cin), {});
    rejected = std::string(absl::StripAsciiWhitespace(*rejected));
  }
  if (rejected.has_value() && rejected->empty()) {
    return UsageError(command, "--rejected: empty token");
  }

  TokenClientOptions options;
  options.connection = connection->broker;
  options.timeout = connection->timeout;
  options.watch = false;  // one call: no stream
  absl::StatusOr<std::unique_ptr<TokenClient>> client =
      TokenClient::Create(std::move(options));
  if (!client.ok()) return Fail(client.status());
  const std::vector<std::string> scopes = flags.GetAll("scope");
  absl::StatusOr<Token> token =
      rejected.has_value()
          ? (*client)->ReportRejected(*tenant, scopes, *rejected, call)
          : (*client)->GetToken(*tenant, scopes, call);
  if (!token.ok()) return Fail(token.status());

  if (format == "token") {
    std::cout << token->access_token << "\n";
  } else if (format == "header") {
    std::cout << token->token_type << " " << token->access_token << "\n";
  } else {
    std::string json;
    const auto s = google::protobuf::util::MessageToJsonString(
        ToResponse(*token), &json, {});
    if (!s.ok()) {
      return Fail(absl::InternalError(
          absl::StrCat("cannot print JSON: ", s.ToString())));
    }
    std::cout << json << "\n";
  }
  std::cout.flush();
  return std::cout.good() ? kExitOk : kExitOther;
}

// Ends a watch when SIGINT/SIGTERM arrives, or when no first token came
// within the timeout. The signals are blocked in every thread and taken
// here with sigtimedwait.
class WatchStopper {
 public:
  WatchStopper(grpc::ClientContext* context, absl::Duration first_token_timeout)
      : context_(context),
        first_token_deadline_(absl::Now() + first_token_timeout),
        thread_([this] { Loop(); }) {}
  ~WatchStopper() {
    done_ = true;
    thread_.join();
  }
  void FirstTokenArrived() { got_token_ = true; }
  bool interrupted() const { return interrupted_; }
  bool timed_out() const { return timed_out_; }

 private:
  void Loop() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    const timespec tick = {0, 100'000'000};  // 100 ms
    while (!done_) {
      if (sigtimedwait(&set, nullptr, &tick) > 0) {
        interrupted_ = true;
        context_->TryCancel();
        return;
      }
      if (!got_token_ && absl::Now() > first_token_deadline_) {
        timed_out_ = true;
        context_->TryCancel();
        return;
      }
    }
  }

  grpc::ClientContext* const context_;
  const absl::Time first_token_deadline_;
  std::atomic<bool> done_{false};
  std::atomic<bool> got_token_{false};
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> timed_out_{false};
  std::thread thread_;
};

int RunWatch(const Command& command, const ParsedFlags& flags) {
  absl::StatusOr<Connection> connection = ConnectionFrom(flags);
  if (!connection.ok()) return UsageError(command, connection.status().message());
  const std::optional<std::string> tenant = flags.Get("tenant");
  if (!tenant.has_value()) return UsageError(command, "--tenant is required");
  int64_t count = 0;
  if (std::optional<std::string> c = flags.Get("count")) {
    if (!absl::SimpleAtoi(*c, &count) || count <= 0) {
      return UsageError(command, absl::StrCat("--count: \"", *c,
                                              "\" is not a positive number"));
    }
  }
  const bool show_token = flags.Has("show-token");

  // Before gRPC starts threads, so that they inherit the mask and only
  // WatchStopper takes these signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      CreateBrokerChannel(connection->broker);
  if (!channel.ok()) return Fail(channel.status());
  std::unique_ptr<v1::TokenService::Stub> stub =
      v1::TokenService::NewStub(*channel);
  v1::WatchTokenRequest request;
  request.set_tenant(*tenant);
  for (const std::string& s : flags.GetAll("scope")) request.add_scopes(s);

  grpc::ClientContext context;
  int64_t received = 0;
  grpc::Status status;
  bool interrupted = false;
  bool timed_out = false;
  {
    WatchStopper stopper(&context, connection->timeout);
    std::unique_ptr<grpc::ClientReader<v1::GetTokenResponse>> reader =
        stub->WatchToken(&context, request);
    v1::GetTokenResponse response;
    while (reader->Read(&response)) {
      stopper.FirstTokenArrived();
      const absl::Time expires_at = FromProtoTimestamp(response.expires_at());
      std::cout << "fingerprint=" << TokenFingerprint(response.access_token())
                << " expires_at=" << FormatUtc(expires_at);
      if (show_token) std::cout << " token=" << response.access_token();
      std::cout << std::endl;
      if (count > 0 && ++received >= count) {
        context.TryCancel();
        break;
      }
    }
    status = reader->Finish();
    interrupted = stopper.interrupted();
    timed_out = stopper.timed_out();
  }
  if (interrupted || (count > 0 && received >= count) || status.ok()) {
    return kExitOk;
  }
  if (timed_out) {
    return Fail(absl::DeadlineExceededError(absl::StrCat(
        "no token within --timeout ", absl::FormatDuration(connection->timeout))));
  }
  return Fail(FromGrpcStatus(status));
}

// The admin stub and a context with the --timeout deadline.
struct AdminCall {
  std::unique_ptr<v1::BrokerAdmin::Stub> stub;
  grpc::ClientContext context;
};

absl::StatusOr<std::unique_ptr<AdminCall>> StartAdminCall(
    const Connection& connection) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      CreateBrokerChannel(connection.broker);
  if (!channel.ok()) return channel.status();
  auto call = std::make_unique<AdminCall>();
  call->stub = v1::BrokerAdmin::NewStub(*channel);
  call->context.set_deadline(std::chrono::system_clock::now() +
                             absl::ToChronoMilliseconds(connection.timeout));
  return call;
}

void PrintJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::cout << json;
}

int RunAdminList(const Command& command, const ParsedFlags& flags) {
  absl::StatusOr<Connection> connection = ConnectionFrom(flags);
  if (!connection.ok()) return UsageError(command, connection.status().message());
  absl::StatusOr<std::unique_ptr<AdminCall>> call = StartAdminCall(*connection);
  if (!call.ok()) return Fail(call.status());
  v1::ListTokensRequest request;
  if (std::optional<std::string> t = flags.Get("tenant")) request.set_tenant(*t);
  v1::ListTokensResponse response;
  const grpc::Status status =
      (*call)->stub->ListTokens(&(*call)->context, request, &response);
  if (!status.ok()) return Fail(FromGrpcStatus(status));
  PrintJson(response);
  return kExitOk;
}

int RunAdminRefresh(const Command& command, const ParsedFlags& flags) {
  absl::StatusOr<Connection> connection = ConnectionFrom(flags);
  if (!connection.ok()) return UsageError(command, connection.status().message());
  const std::optional<std::string> tenant = flags.Get("tenant");
  if (!tenant.has_value()) return UsageError(command, "--tenant is required");
  absl::StatusOr<std::unique_ptr<AdminCall>> call = StartAdminCall(*connection);
  if (!call.ok()) return Fail(call.status());
  v1::RefreshTokenRequest request;
  request.set_tenant(*tenant);
  for (const std::string& s : flags.GetAll("scope")) request.add_scopes(s);
  v1::RefreshTokenResponse response;
  const grpc::Status status =
      (*call)->stub->RefreshToken(&(*call)->context, request, &response);
  if (!status.ok()) return Fail(FromGrpcStatus(status));
  std::cout << "fingerprint=" << response.token_fingerprint() << " expires_at="
            << FormatUtc(FromProtoTimestamp(response.expires_at()))
            << std::endl;
  return kExitOk;
}

int RunAdminReload(const Command& command, const ParsedFlags& flags) {
  absl::StatusOr<Connection> connection = ConnectionFrom(flags);
  if (!connection.ok()) return UsageError(command, connection.status().message());
  absl::StatusOr<std::unique_ptr<AdminCall>> call = StartAdminCall(*connection);
  if (!call.ok()) return Fail(call.status());
  v1::ReloadConfigResponse response;
  const grpc::Status status =
      (*call)->stub->ReloadConfig(&(*call)->context, {}, &response);
  if (!status.ok()) return Fail(FromGrpcStatus(status));
  PrintJson(response);
  if (!response.applied()) {
    PrintError(absl::FailedPreconditionError(
        absl::StrCat("the broker rejected its config file; the old config "
                     "stays in force: ",
                     absl::StrReplaceAll(response.error(), {{"\n", "; "}}))));
    return kExitOther;
  }
  return kExitOk;
}

int RunVersion(const Command&, const ParsedFlags&) {
  std::cout << kProgram << " " << Version() << "\n";
  return kExitOk;
}

int RunHelp(const Command& command, const ParsedFlags& flags);

const std::vector<Command>& Commands() {
  static const auto* const commands = new std::vector<Command>{
      {"get", kGetUsage, true,
       {{"tenant", FlagSpec::kValue},
        {"scope", FlagSpec::kRepeated},
        {"min-ttl", FlagSpec::kValue},
        {"format", FlagSpec::kValue},
        {"rejected", FlagSpec::kValue}},
       RunGet},
      {"watch", kWatchUsage, true,
       {{"tenant", FlagSpec::kValue},
        {"scope", FlagSpec::kRepeated},
        {"show-token", FlagSpec::kBool},
        {"count", FlagSpec::kValue}},
       RunWatch},
      {"admin list", kAdminUsage, true, {{"tenant", FlagSpec::kValue}},
       RunAdminList},
      {"admin refresh", kAdminUsage, true,
       {{"tenant", FlagSpec::kValue}, {"scope", FlagSpec::kRepeated}},
       RunAdminRefresh},
      {"admin reload", kAdminUsage, true, {}, RunAdminReload},
      {"help", kHelpUsage, false, {}, RunHelp},
      {"version", kVersionUsage, false, {}, RunVersion},
  };
  return *commands;
}

const Command* FindCommand(absl::string_view name) {
  for (const Command& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

int RunHelp(const Command&, const ParsedFlags&) {
  std::cout << kMainUsage;
  return kExitOk;
}

int UnknownCommand(absl::string_view name) {
  std::cerr << kProgram << ": unknown command \"" << name << "\" (see "
            << kProgram << " --help)" << std::endl;
  return kExitUsage;
}

}  // namespace

ExitCode ExitCodeFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kExitDenied;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    default:
      return kExitOther;
  }
}

int Run(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << kProgram << ": missing command (see " << kProgram
              << " --help)" << std::endl;
    return kExitUsage;
  }
  const std::string& name = args[0];
  if (name == "--help" || name == "-h") return RunHelp(Commands()[0], {});
  if (name == "--version") return RunVersion(Commands()[0], {});
  // `help COMMAND` is `COMMAND --help`.
  if (name == "help" && args.size() > 1 && args[1][0] != '-') {
    if (args[1] == "admin") {
      std::cout << kAdminUsage;
      return kExitOk;
    }
    const Command* command = FindCommand(args[1]);
    if (command == nullptr) return UnknownCommand(args[1]);
    std::cout << command->usage;
    return kExitOk;
  }
  // `admin SUB`: a two-word command.
  size_t consumed = 1;
  std::string command_name = name;
  if (name == "admin") {
    if (args.size() < 2 || args[1] == "--help" || args[1] == "-h") {
      if (args.size() >= 2) {
        std::cout << kAdminUsage;
        return kExitOk;
      }
      std::cerr << kProgram << ": admin: missing subcommand: list, refresh "
                << "or reload (see " << kProgram << " admin --help)"
                << std::endl;
      return kExitUsage;
    }
    command_name = absl::StrCat("admin ", args[1]);
    consumed = 2;
  }
  const Command* command = FindCommand(command_name);
  if (command == nullptr) return UnknownCommand(command_name);

  std::vector<FlagSpec> specs = command->flags;
  specs.push_back({"help", FlagSpec::kBool});
  if (command->connects) {
    for (const char* f : {"addr", "ca", "cert", "key", "timeout"}) {
      specs.push_back({f, FlagSpec::kValue});
    }
  }
  const absl::Span<const std::string> rest =
      absl::MakeConstSpan(args).subspan(consumed);
  absl::StatusOr<ParsedFlags> flags = ParseFlags(rest, specs);
  if (!flags.ok()) return UsageError(*command, flags.status().message());
  if (flags->Has("help")) {
    std::cout << command->usage;
    return kExitOk;
  }
  return command->run(*command, *flags);
}

}  // namespace treezor::client::cli
