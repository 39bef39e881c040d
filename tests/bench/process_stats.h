// What the kernel says about another process: resident memory (current and
// peak, from /proc/PID/status), CPU time used (utime + stime, from
// /proc/PID/stat) and open file descriptors (/proc/PID/fd). The benchmarks read the real broker's share this way
// instead of guessing it from inside a shared process.
//
//   absl::StatusOr<ProcessStats> s = ReadProcessStats(broker_pid);
//   if (s.ok()) std::cout << s->peak_rss_kb << " kB, " << s->cpu_seconds;
//
// Thread-safety: stateless; safe from any thread.
#ifndef TREEZOR_BROKER_TESTS_BENCH_PROCESS_STATS_H_
#define TREEZOR_BROKER_TESTS_BENCH_PROCESS_STATS_H_

#include <sys/types.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace treezor::broker::bench {

struct ProcessStats {
  int64_t rss_kb = 0;       // VmRSS
  int64_t peak_rss_kb = 0;  // VmHWM: the high-water mark since start
  int64_t threads = 0;      // Threads
  double cpu_seconds = 0;   // utime + stime, all threads
  int64_t open_fds = 0;     // entries of /proc/PID/fd
};

// NOT_FOUND when the process is gone.
absl::StatusOr<ProcessStats> ReadProcessStats(pid_t pid);

}  // namespace treezor::broker::bench

#endif  // TREEZOR_BROKER_TESTS_BENCH_PROCESS_STATS_H_
