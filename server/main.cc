// treezor-token-broker: holds Treezor API credentials and hands short-lived
// Treezor access tokens to internal callers over mTLS gRPC.
//
//   treezor-token-broker --config /etc/treezor-token-broker/config.json
//   treezor-token-broker --check-config config.json   # validate and exit
//
// Core dumps are disabled at start (server/core_dumps.h) unless
// --allow-core-dumps is given.
// Stops gracefully on SIGTERM or SIGINT (exit 0). SIGHUP, a change of the
// config file, or BrokerAdmin.ReloadConfig reloads the config.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/grpc.h"
#include "server/broker_server.h"
#include "server/config.h"
#include "server/core_dumps.h"
#include "server/logging.h"

ABSL_FLAG(std::string, config, "", "Path of the broker's JSON config file.");
ABSL_FLAG(std::string, check_config, "",
          "Validate this config file, print the result and exit (0 when "
          "valid).");
ABSL_FLAG(bool, allow_core_dumps, false,
          "Keep core dumps possible (--allow-core-dumps), for debugging a "
          "crash. By default the broker sets RLIMIT_CORE to 0 and makes "
          "itself non-dumpable at start, so its memory (client secrets, "
          "passwords, tokens) never lands in a core file and same-user "
          "processes cannot ptrace it.");

namespace treezor::broker {
namespace {

// Problems refuse the config (exit 1); warnings do not (exit 0). Both go to
// stderr, one a line, each naming its field; the verdict goes to stdout when
// the config is valid.
int CheckConfig(const std::string& path) {
  std::vector<ConfigWarning> warnings;
  absl::StatusOr<v1::BrokerConfig> config = LoadConfigFile(path, &warnings);
  if (!config.ok()) {
    std::fprintf(stderr, "%s: invalid configuration:\n%s\n", path.c_str(),
                 std::string(config.status().message()).c_str());
  }
  for (const ConfigWarning& warning : warnings) {
    std::fprintf(stderr, "%s: warning: %s\n", path.c_str(),
                 warning.ToString().c_str());
  }
  if (!config.ok()) return 1;
  std::printf("%s: configuration is valid (%d tenants, %d callers%s)\n",
              path.c_str(), config->tenants_size(), config->callers_size(),
              warnings.empty()
                  ? ""
                  : absl::StrCat(", ", warnings.size(),
                                 warnings.size() == 1 ? " warning" : " warnings")
                        .c_str());
  return 0;
}

// Each token request briefly needs sockets; thousands of tenants and
// callers need more descriptors than the common 1024 soft limit.
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Run(const std::string& path, bool core_dumps_allowed) {
  RaiseOpenFileLimit();
  LogInfo("process hygiene",
          {{"core_dumps", core_dumps_allowed
                              ? "allowed (--allow-core-dumps)"
                              : "disabled"},
           {"core_dumps_possible", CoreDumpsPossible()}});
  // Signals are taken synchronously by this thread; every thread started
  // from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<ConfigWarning> warnings;
  absl::StatusOr<v1::BrokerConfig> config = LoadConfigFile(path, &warnings);
  if (!config.ok()) {
    LogError("invalid configuration; not starting",
             {{"config", path}, {"error", config.status().message()}});
    return 1;
  }
  LogConfigWarnings(path, warnings);
  BrokerServer::Options options;
  options.config_path = path;
  auto broker = BrokerServer::Start(*config, options);
  if (!broker.ok()) {
    LogError("cannot start", {{"config", path},
                              {"error", broker.status().ToString()}});
    return 1;
  }
  int signal_number = 0;
  for (;;) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) break;
    LogInfo("SIGHUP received; reloading the config", {{"config", path}});
    (*broker)->Reload();  // logs its outcome
  }
  LogInfo("signal received; shutting down",
          {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*broker)->Shutdown();
  FlushLogs();
  return 0;
}

}  // namespace
}  // namespace treezor::broker

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (all of gRPC's)
  // keeps a lock-order graph for deadlock detection, a debugging aid that
  // release builds of Abseil leave off; it was ~3 % of the broker's
  // instructions under load (tests/bench/README.md, "Issue 13: the hit
  // path"). Off before any thread.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "Treezor token broker.\n"
      "  treezor-token-broker --config FILE [--allow-core-dumps]\n"
      "  treezor-token-broker --check-config FILE\n"
      "\n"
      "  --config FILE        the broker's JSON config file\n"
      "  --check-config FILE  validate FILE, print the result, exit 0 when "
      "valid\n"
      "  --allow-core-dumps   keep core dumps possible, for debugging a crash.\n"
      "                       By default the broker sets RLIMIT_CORE to 0 and\n"
      "                       makes itself non-dumpable at start, so its memory\n"
      "                       (client secrets, passwords, tokens) never lands in\n"
      "                       a core file and same-user processes cannot attach\n"
      "                       a debugger.");
  // The documented spellings are --check-config and --allow-core-dumps; absl
  // flag names cannot hold '-', so accept both spellings.
  std::vector<std::string> args(argv, argv + argc);
  for (std::string& a : args) {
    for (const std::string name : {"check-config", "allow-core-dumps"}) {
      const std::string flag = "--" + name;
      if (a == flag || a.rfind(flag + "=", 0) == 0) {
        std::string underscored = name;
        std::replace(underscored.begin(), underscored.end(), '-', '_');
        a.replace(2, name.size(), underscored);
      }
    }
  }
  std::vector<char*> argv2;
  for (std::string& a : args) argv2.push_back(a.data());
  std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(argv2.size()), argv2.data());
  if (rest.size() > 1) {
    std::fprintf(stderr, "unexpected argument: %s (see --help)\n", rest[1]);
    return 2;
  }
  // Before anything reads a secret (--check-config reads them too).
  const bool allow_core_dumps = absl::GetFlag(FLAGS_allow_core_dumps);
  if (!allow_core_dumps) {
    const absl::Status disabled = treezor::broker::DisableCoreDumps();
    if (!disabled.ok()) {
      std::fprintf(stderr,
                   "cannot disable core dumps: %s (--allow-core-dumps runs "
                   "without this protection)\n",
                   std::string(disabled.message()).c_str());
      return 1;
    }
  }
  const std::string check = absl::GetFlag(FLAGS_check_config);
  if (!check.empty()) return treezor::broker::CheckConfig(check);
  const std::string config = absl::GetFlag(FLAGS_config);
  if (config.empty()) {
    std::fprintf(stderr, "--config FILE is required (see --help)\n");
    return 2;
  }
  // gRPC is shut down here, synchronously, once the broker is gone: left to
  // itself it shuts down on a thread of its own that races the exit.
  grpc_init();
  const int code = treezor::broker::Run(config, allow_core_dumps);
  grpc_shutdown_blocking();
  return code;
}
