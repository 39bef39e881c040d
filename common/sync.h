// Mutex and condition variable for shared state, in the broker and in the
// client library alike.
//
// Why not absl::Mutex: Debian's prebuilt Abseil is not built with
// ThreadSanitizer, so its locking is invisible to TSan and every guarded
// access would be reported as a race (see ../shared/TOOLS.md). std::mutex is
// intercepted by TSan; this thin wrapper adds clang's capability annotations so
// `ABSL_GUARDED_BY(mu_)` is still checked by -Wthread-safety.
//
//   Mutex mu_;
//   int n_ ABSL_GUARDED_BY(mu_);
//   void Inc() ABSL_LOCKS_EXCLUDED(mu_) { MutexLock lock(&mu_); ++n_; }
//
//   // Waiting for a condition, with a deadline:
//   MutexLock lock(&mu_);
//   if (!cv_.WaitUntil(&mu_, absl::Now() + timeout,
//                      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
//                        return n_ >= 3;
//                      })) {
//     return absl::DeadlineExceededError("...");
//   }
#ifndef TREEZOR_COMMON_SYNC_H_
#define TREEZOR_COMMON_SYNC_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace treezor {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Waits on a Mutex the caller holds. Deadlines are real time (absl::Now): a
// fake clock never drives these waits, it only decides what is due when
// woken.
class CondVar {
 public:
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // One wait of at most `timeout` (wakeups may be spurious). Returns false on
  // timeout.
  bool WaitFor(Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (timeout <= absl::ZeroDuration()) return false;
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const auto status =
        cv_.wait_for(lock, absl::ToChronoNanoseconds(
                               std::min(timeout, absl::Hours(24))));
    lock.release();
    return status == std::cv_status::no_timeout;
  }
  // Waits until `done()` holds or `deadline` passes, and returns done(). The
  // one way to wait for a condition with a deadline: `done` is checked under
  // `mu` before every wait and after every wakeup. InfiniteFuture() waits
  // for as long as it takes.
  //
  // (The body is not analysed: clang cannot see that `done`, which requires
  // the caller's mutex, runs with `mu` held. Callers are still checked.)
  template <typename Pred>
  bool WaitUntil(Mutex* mu, absl::Time deadline, Pred done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    while (!done()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return done();
      WaitFor(mu, left);
    }
    return true;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace treezor

#endif  // TREEZOR_COMMON_SYNC_H_
