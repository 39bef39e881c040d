#include "tests/bench/broker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace treezor::broker::bench {

absl::StatusOr<pid_t> SpawnBroker(const std::string& binary,
                                  const std::string& config_path,
                                  const std::string& log_path,
                                  const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const std::string& e : extra_env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = binary, arg1 = "--config", arg2 = config_path;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot spawn ", binary, ": ", strerror(rc)));
  }
  return pid;
}

int StopProcess(pid_t pid, absl::Duration grace) {
  kill(pid, SIGTERM);
  const absl::Time until = absl::Now() + grace;
  int status = 0;
  while (absl::Now() < until) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    absl::SleepFor(absl::Milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return status;
}

bool Exited(pid_t pid) {
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == pid;
}

absl::StatusOr<std::string> WaitForLogField(const std::string& log_path,
                                            absl::string_view msg,
                                            absl::string_view field,
                                            absl::Duration timeout) {
  const std::string msg_needle = absl::StrCat("\"msg\":\"", msg, "\"");
  const std::string field_needle = absl::StrCat("\"", field, "\":");
  const absl::Time until = absl::Now() + timeout;
  do {
    std::ifstream in(log_path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(msg_needle) == std::string::npos) continue;
      size_t at = line.find(field_needle);
      if (at == std::string::npos) continue;
      at += field_needle.size();
      if (at < line.size() && line[at] == '"') {
        const size_t end = line.find('"', at + 1);
        if (end == std::string::npos) continue;
        return line.substr(at + 1, end - at - 1);
      }
      const size_t end = line.find_first_of(",}", at);
      return line.substr(at, end == std::string::npos ? end : end - at);
    }
    // Another process writes the log: poll it.
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < until);
  return absl::DeadlineExceededError(absl::StrCat(
      "no \"", msg, "\" line with ", field, " in ", log_path, " after ",
      absl::FormatDuration(timeout)));
}

}  // namespace treezor::broker::bench
