// The broker's own progress, for tests and tooling that must wait for it
// without polling: how many requests to Treezor have completed (and been
// applied), which config generation is in force, and whether the broker is
// ready. The components that make the progress report it here; nothing in
// the broker itself waits on it.
//
//   BrokerProgress& progress = broker->progress();
//   ASSERT_TRUE(progress.WaitForFetches(2, absl::Seconds(10)));
//
// Order matters to waiters: readiness is reported before the fetch that made
// the broker ready is counted, so WaitForFetches(n) returning true means
// readiness already reflects those n fetches.
//
// Thread-safety: thread-safe. Deadlines are real time (absl::Now()), like
// every CondVar wait: a fake clock does not drive them.
#ifndef TREEZOR_BROKER_SERVER_BROKER_PROGRESS_H_
#define TREEZOR_BROKER_SERVER_BROKER_PROGRESS_H_

#include <cstdint>

#include "absl/time/time.h"
#include "common/sync.h"

namespace treezor::broker {

class BrokerProgress {
 public:
  // Reported by the broker's components.
  void FetchDone() ABSL_LOCKS_EXCLUDED(mu_);
  void SetGeneration(int64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  void SetReady(bool ready) ABSL_LOCKS_EXCLUDED(mu_);

  int64_t fetches_done() const ABSL_LOCKS_EXCLUDED(mu_);
  // True once at least `n` requests to Treezor have completed / the config
  // generation is at least `n` / the broker is ready; false after `timeout`.
  bool WaitForFetches(int64_t n, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool WaitForGeneration(int64_t n, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool WaitUntilReady(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable Mutex mu_;
  CondVar cv_;
  int64_t fetches_done_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_BROKER_PROGRESS_H_
