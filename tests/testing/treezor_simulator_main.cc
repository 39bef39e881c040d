// treezor-simulator: the fake Treezor token endpoint (fake_treezor.h) as a
// standalone HTTPS server with mandatory client certificates, for the demo
// (scripts/demo.sh) and for trying the broker by hand.
//
//   treezor-simulator --cert=treezor.crt --key=treezor.key
//       --client_ca=clients-ca.crt --client_id=1234
//       --client_secret_file=secret.txt [--username_file=u --password_file=p]
//
// Logs one JSON line per token request on stderr, naming tokens by
// fingerprint only; never a secret. Runs until SIGTERM or SIGINT.
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/logging.h"
#include "tests/testing/fake_treezor.h"

ABSL_FLAG(std::string, listen_host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, listen_port, 8444, "Port to listen on (0: any free port).");
ABSL_FLAG(std::string, cert, "", "Server certificate (PEM).");
ABSL_FLAG(std::string, key, "", "Server private key (PEM).");
ABSL_FLAG(std::string, client_ca, "",
          "CA bundle (PEM) that client certificates must chain to.");
ABSL_FLAG(std::string, client_id, "1234", "The accepted client_id.");
ABSL_FLAG(std::string, client_secret_file, "",
          "File holding the accepted client_secret.");
ABSL_FLAG(std::string, username_file, "",
          "File holding the username accepted by the password grant (the "
          "password grant is off without it).");
ABSL_FLAG(std::string, password_file, "",
          "File holding the password accepted by the password grant.");
ABSL_FLAG(absl::Duration, token_lifetime, absl::Hours(1),
          "expires_in of the tokens issued (also their JWT exp).");

namespace treezor::broker::testing {
namespace {

// The file's contents without surrounding whitespace (a trailing newline is
// the usual way such files end).
absl::StatusOr<std::string> ReadSecretFile(absl::string_view flag,
                                           const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": cannot read \"", path, "\": ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string value(absl::StripAsciiWhitespace(contents.str()));
  if (value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": \"", path, "\" is empty"));
  }
  return value;
}

void LogRequest(const ReceivedRequest& r) {
  auto param = [&r](const std::string& key) {
    auto it = r.params.find(key);
    return it == r.params.end() ? std::string() : it->second;
  };
  LogInfo("token request", {{"grant_type", r.grant_type},
                            {"content_type", r.content_type},
                            {"client_id", param("client_id")},
                            {"scope", param("scope")},
                            {"client_cert_cn", r.client_cert_cn},
                            {"status", r.http_status},
                            {"dropped", r.dropped ? "true" : "false"},
                            {"error", r.error},
                            {"token_fp", r.access_token_fingerprint}});
}

absl::StatusOr<FakeTreezor::Options> OptionsFromFlags() {
  FakeTreezor::Options options;
  options.host = absl::GetFlag(FLAGS_listen_host);
  options.port = absl::GetFlag(FLAGS_listen_port);
  options.cert_file = absl::GetFlag(FLAGS_cert);
  options.key_file = absl::GetFlag(FLAGS_key);
  options.client_ca_file = absl::GetFlag(FLAGS_client_ca);
  options.client_id = absl::GetFlag(FLAGS_client_id);
  options.token_lifetime = absl::GetFlag(FLAGS_token_lifetime);
  options.on_answered = LogRequest;

  absl::StatusOr<std::string> secret = ReadSecretFile(
      "client_secret_file", absl::GetFlag(FLAGS_client_secret_file));
  if (!secret.ok()) return secret.status();
  options.client_secret = *std::move(secret);

  const std::string username_file = absl::GetFlag(FLAGS_username_file);
  const std::string password_file = absl::GetFlag(FLAGS_password_file);
  if (username_file.empty() != password_file.empty()) {
    return absl::InvalidArgumentError(
        "--username_file and --password_file go together");
  }
  if (!username_file.empty()) {
    absl::StatusOr<std::string> username =
        ReadSecretFile("username_file", username_file);
    if (!username.ok()) return username.status();
    absl::StatusOr<std::string> password =
        ReadSecretFile("password_file", password_file);
    if (!password.ok()) return password.status();
    options.username = *std::move(username);
    options.password = *std::move(password);
  }
  return options;
}

int Run() {
  // Blocked before any thread starts, so every thread inherits the mask and
  // sigwait() below is the only receiver.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<FakeTreezor::Options> options = OptionsFromFlags();
  if (!options.ok()) {
    LogError("bad flags", {{"error", options.status().ToString()}});
    return 2;
  }
  const bool password_grant = !options->username.empty();
  absl::StatusOr<std::unique_ptr<FakeTreezor>> treezor =
      FakeTreezor::Start(*std::move(options));
  if (!treezor.ok()) {
    LogError("cannot start", {{"error", treezor.status().ToString()}});
    return 1;
  }
  LogInfo("treezor simulator listening",
          {{"url", (*treezor)->base_url()},
           {"token_path", "/oauth/token"},
           {"client_id", absl::GetFlag(FLAGS_client_id)},
           {"password_grant", password_grant ? "on" : "off"},
           {"token_lifetime",
            absl::FormatDuration(absl::GetFlag(FLAGS_token_lifetime))}});

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LogInfo("stopping", {{"signal", strsignal(signal_number)}});
  (*treezor)->Stop();
  return 0;
}

}  // namespace
}  // namespace treezor::broker::testing

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Fake Treezor OAuth token endpoint over mutual TLS (for demos and "
      "tests).");
  absl::ParseCommandLine(argc, argv);
  return treezor::broker::testing::Run();
}
