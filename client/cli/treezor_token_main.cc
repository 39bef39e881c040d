// treezor-token: see client/cli/commands.h and client/README.md.
#include <signal.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "client/cli/commands.h"
#include "grpc/grpc.h"
#include "grpc/support/log.h"

namespace {
void DiscardGrpcLog(gpr_log_func_args*) {}
}  // namespace

int main(int argc, char** argv) {
  // stderr carries exactly one line per failure (see --help, exit codes):
  // gRPC's own diagnostics only when asked for with GRPC_VERBOSITY.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) {
    gpr_set_log_function(DiscardGrpcLog);
  }
  // gRPC stays initialised until the command is done and is then shut down
  // here, synchronously. Otherwise the last channel's destruction starts
  // gRPC's asynchronous shutdown on a thread of its own, which races the
  // process's exit (seen as a double free in grpc_cq_internal_unref under
  // AddressSanitizer on a loaded machine).
  // gRPC's threads start with SIGINT and SIGTERM blocked, so that `watch`
  // can take them with sigtimedwait; this thread gets the default handling
  // back (a `get` dies on SIGTERM as any command does).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  grpc_init();
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  const int code =
      treezor::client::cli::Run(std::vector<std::string>(argv + 1, argv + argc));
  grpc_shutdown_blocking();
  return code;
}
