// treezor-token: the command line for scripts and on-call engineers. Each
// subcommand is one entry of a table (name, help text, flags, function), so
// a new one — e.g. `admin list|refresh|reload` once the broker has an admin
// API — is one more entry.
//
// Exit codes are part of the interface (client/README.md): see ExitCode.
#ifndef TREEZOR_BROKER_CLIENT_CLI_COMMANDS_H_
#define TREEZOR_BROKER_CLIENT_CLI_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace treezor::client::cli {

enum ExitCode {
  kExitOk = 0,
  kExitOther = 1,        // any other error
  kExitUsage = 2,        // the command line cannot be understood
  kExitDenied = 3,       // PERMISSION_DENIED, UNAUTHENTICATED
  kExitUnavailable = 4,  // UNAVAILABLE, DEADLINE_EXCEEDED: retry later
};

ExitCode ExitCodeFor(absl::StatusCode code);

// Runs `treezor-token <args...>` (args excludes the program name); prints to
// stdout/stderr and returns the exit code.
int Run(const std::vector<std::string>& args);

}  // namespace treezor::client::cli

#endif  // TREEZOR_BROKER_CLIENT_CLI_COMMANDS_H_
