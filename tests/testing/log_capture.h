// Captures every log line of the process (server/logging.h) while alive, so
// tests can assert what was logged — and wait for a line without sleeping.
//
//   LogCapture log;
//   ... the code under test logs ...
//   ASSERT_TRUE(log.WaitForLine({"\"msg\":\"audit\"", "\"rpc\":\"GetToken\""},
//                               absl::Seconds(10)));
//
// One sink per process: a capture replaces any other while alive, and
// restores stderr when destroyed.
//
// Thread-safety: lines may arrive from any thread; the accessors are
// thread-safe.
#ifndef TREEZOR_BROKER_TESTS_TESTING_LOG_CAPTURE_H_
#define TREEZOR_BROKER_TESTS_TESTING_LOG_CAPTURE_H_

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "server/logging.h"

namespace treezor::broker::testing {

class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](absl::string_view line) {
      MutexLock lock(&mu_);
      lines_.emplace_back(line);
      cv_.SignalAll();
    });
  }
  ~LogCapture() { SetLogSink(nullptr); }

  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return lines_;
  }

  bool Contains(absl::string_view needle) const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    for (const auto& l : lines_) {
      if (absl::StrContains(l, needle)) return true;
    }
    return false;
  }

  // The lines holding every one of `needles`.
  std::vector<std::string> LinesWith(const std::vector<std::string>& needles)
      const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return LinesWithLocked(needles);
  }

  // True once some line holds every one of `needles` (false after `timeout`,
  // real time).
  bool WaitForLine(const std::vector<std::string>& needles,
                   absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return !LinesWithLocked(needles).empty();
                         });
  }

 private:
  std::vector<std::string> LinesWithLocked(
      const std::vector<std::string>& needles) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::string> found;
    for (const std::string& line : lines_) {
      bool all = true;
      for (const std::string& n : needles) {
        all = all && absl::StrContains(line, n);
      }
      if (all) found.push_back(line);
    }
    return found;
  }

  mutable Mutex mu_;
  mutable CondVar cv_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_LOG_CAPTURE_H_
