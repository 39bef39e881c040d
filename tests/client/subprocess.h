// Runs a program for a test, as a shell would: arguments, an environment
// (the test's own, minus TREEZOR_BROKER_*, plus what the test sets), stdin;
// captures stdout and stderr and the exit code. Lines of stdout can be read
// while the program runs (for `treezor-token watch`).
//
//   auto p = Subprocess::Start(TZB_CLI_PATH, {.args = {"get", "--tenant", "acme"}});
//   Subprocess::Result r = p->Wait();  // r.exit_code, r.out, r.err
//
// Thread-safety: one thread per Subprocess.
#ifndef TREEZOR_BROKER_TESTS_CLIENT_SUBPROCESS_H_
#define TREEZOR_BROKER_TESTS_CLIENT_SUBPROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

extern char** environ;

namespace treezor::client::testing {

class Subprocess {
 public:
  struct Options {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;  // added to the environment
    std::string stdin_data;
  };
  struct Result {
    int exit_code = -1;  // 128 + signal if killed by one
    std::string out;
    std::string err;
  };

  static std::unique_ptr<Subprocess> Start(const std::string& path,
                                           const Options& options) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
        pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe: " << std::strerror(errno);
      return nullptr;
    }
    std::vector<std::string> argv_s = {path};
    argv_s.insert(argv_s.end(), options.args.begin(), options.args.end());
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      if (!absl::StartsWith(*e, "TREEZOR_BROKER_")) env_s.emplace_back(*e);
    }
    for (const auto& [k, v] : options.env) env_s.push_back(k + "=" + v);
    std::vector<char*> argv, envp;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    auto p = std::unique_ptr<Subprocess>(new Subprocess);
    const int rc = posix_spawn(&p->pid_, path.c_str(), &actions, nullptr,
                               argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << path << ": " << std::strerror(rc);
      close(in[1]);
      close(out[0]);
      close(err[0]);
      return nullptr;
    }
    // Small inputs only: written whole before the program reads.
    if (!options.stdin_data.empty() &&
        write(in[1], options.stdin_data.data(), options.stdin_data.size()) !=
            static_cast<ssize_t>(options.stdin_data.size())) {
      ADD_FAILURE() << "write to stdin failed";
    }
    close(in[1]);
    p->out_fd_ = out[0];
    p->err_fd_ = err[0];
    return p;
  }

  static Result Run(const std::string& path, const Options& options) {
    std::unique_ptr<Subprocess> p = Start(path, options);
    return p == nullptr ? Result() : p->Wait();
  }

  ~Subprocess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  // The next line of stdout without its newline; nullopt at the end of the
  // output or after `timeout`.
  std::optional<std::string> ReadLine(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (const size_t nl = out_.find('\n'); nl != std::string::npos) {
        std::string line = out_.substr(0, nl);
        out_.erase(0, nl + 1);
        return line;
      }
      if (out_fd_ < 0 || !Pump(deadline)) return std::nullopt;
    }
  }

  void Signal(int sig) { kill(pid_, sig); }

  // Reads both outputs to their end (killing the program after `timeout`)
  // and reaps it.
  Result Wait(absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    while ((out_fd_ >= 0 || err_fd_ >= 0) && Pump(deadline)) {
    }
    if (out_fd_ >= 0 || err_fd_ >= 0) {
      ADD_FAILURE() << "still running after " << timeout << ": killed";
      kill(pid_, SIGKILL);
    }
    Result r;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status)
                                    : 128 + WTERMSIG(status);
    r.out = std::move(out_);
    r.err = std::move(err_);
    return r;
  }

 private:
  Subprocess() = default;

  // Reads what is available from either pipe; false on timeout.
  bool Pump(absl::Time deadline) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    const int ms = static_cast<int>(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (poll(fds, 2, ms) <= 0) return false;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      int& fd = i == 0 ? out_fd_ : err_fd_;
      if (n <= 0) {
        close(fd);
        fd = -1;
      } else {
        (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

}  // namespace treezor::client::testing

#endif  // TREEZOR_BROKER_TESTS_CLIENT_SUBPROCESS_H_
