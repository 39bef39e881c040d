// The real broker binary as a child process of a benchmark: spawn it with
// extra environment variables and its output in a log file, read the ports it
// logged at start-up, stop it with SIGTERM (SIGKILL after a grace period).
//
//   absl::StatusOr<pid_t> pid = SpawnBroker(binary, config, log, {"S=..."});
//   absl::StatusOr<std::string> port =
//       WaitForLogField(log, "broker started", "port", absl::Seconds(30));
//   StopProcess(*pid, absl::Seconds(10));
//
// Thread-safety: stateless; safe from any thread.
#ifndef TREEZOR_BROKER_TESTS_BENCH_BROKER_PROCESS_H_
#define TREEZOR_BROKER_TESTS_BENCH_BROKER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace treezor::broker::bench {

// `binary --config config_path`, with this process's environment plus
// `extra_env` ("NAME=value" each), stdout and stderr both to `log_path`.
absl::StatusOr<pid_t> SpawnBroker(const std::string& binary,
                                  const std::string& config_path,
                                  const std::string& log_path,
                                  const std::vector<std::string>& extra_env);

// SIGTERM, then SIGKILL if it has not exited within `grace`; the wait status.
int StopProcess(pid_t pid, absl::Duration grace);

// True once `pid` (a child) has exited; reaps it.
bool Exited(pid_t pid);

// The string value of `field` on the first JSON log line of `log_path` whose
// "msg" is `msg`, waiting up to `timeout` for it to be written (polling the
// file: the broker is another process). DEADLINE_EXCEEDED names the message.
absl::StatusOr<std::string> WaitForLogField(const std::string& log_path,
                                            absl::string_view msg,
                                            absl::string_view field,
                                            absl::Duration timeout);

}  // namespace treezor::broker::bench

#endif  // TREEZOR_BROKER_TESTS_BENCH_BROKER_PROCESS_H_
