// Runs the token cache's background work without knowing what it is: a
// due-time queue served by one timer thread, and a pool of worker threads
// fed from an urgent and a background queue. Work is named by an id the
// owner chooses (the cache uses its entry ids), so a timer can be moved and
// queued work promoted or withdrawn.
//
//   RenewalScheduler scheduler(&clock, /*workers=*/8);
//   scheduler.ScheduleAt(id, clock.MonotonicNow() + absl::Minutes(45),
//                        [] { /* on the timer thread: decide, then Submit */ });
//   scheduler.Submit(id, RenewalScheduler::Priority::kUrgent,
//                    [] { /* on a worker thread: the request to Treezor */ });
//
// Decisions:
//  - One timer per id: ScheduleAt replaces the id's earlier timer. Timer
//    tasks run on the timer thread and must be short (decide and Submit).
//  - At most one queued item per id: submitting an id already queued keeps
//    the first task, and moves it to the urgent queue when asked to (never
//    back). The worker count bounds the tasks running at once.
//  - Fairness (issue 11 item 4): work carries a fairness key (the cache
//    passes the tenant). Every key has its own urgent and background FIFOs,
//    and workers serve the keys in turn, one item per turn, urgent before
//    background within a key. A key with nothing queued or running is
//    served before keys already served (then it joins the rotation's
//    tail), so one key's burst delays another key's first item — urgent or
//    background, e.g. a renewal — only by the items already running, and
//    by at most one item per other key afterwards. Urgent comes first only
//    within a key: a tenant's renewal must not starve behind another
//    tenant's burst of cold requests. A key with nothing queued or running
//    is forgotten (no state grows with keys that come and go).
//  - Due times are on the clock's monotonic timeline (Clock::MonotonicNow),
//    so a wall-clock step neither fires nor delays a timer. The timer
//    sleeps until the earliest due time on real time; when the clock jumps
//    (a fake clock in tests) its owner calls Wake().
//
// Thread-safety: all methods are thread-safe and may be called from tasks.
// Tasks run without the scheduler's lock; callers may hold their own locks
// when calling in (the scheduler's lock is always taken last).
#ifndef TREEZOR_BROKER_SERVER_RENEWAL_SCHEDULER_H_
#define TREEZOR_BROKER_SERVER_RENEWAL_SCHEDULER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"

namespace treezor::broker {

class RenewalScheduler {
 public:
  using Task = std::function<void()>;
  enum class Priority { kUrgent, kBackground };

  // `clock` must outlive the scheduler. Starts the timer thread and
  // `workers` (at least one) worker threads.
  RenewalScheduler(const Clock* clock, int workers);
  // Shutdown().
  ~RenewalScheduler();

  RenewalScheduler(const RenewalScheduler&) = delete;
  RenewalScheduler& operator=(const RenewalScheduler&) = delete;

  // Runs `on_due` on the timer thread once clock->MonotonicNow() reaches `due`,
  // replacing any earlier timer of `id`.
  void ScheduleAt(uint64_t id, absl::Time due, Task on_due)
      ABSL_LOCKS_EXCLUDED(mu_);
  void CancelTimer(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  // Queues `task` to run once on a worker thread, in `fairness_key`'s turn
  // (see the header comment, also for ids already queued: a queued id keeps
  // its first key). False once shut down (the task is dropped).
  bool Submit(uint64_t id, Priority priority, const std::string& fairness_key,
              Task task) ABSL_LOCKS_EXCLUDED(mu_);
  // Submit under the one shared key "" (plain FIFO within the priority).
  bool Submit(uint64_t id, Priority priority, Task task)
      ABSL_LOCKS_EXCLUDED(mu_) {
    return Submit(id, priority, std::string(), std::move(task));
  }
  // Withdraws `id`'s queued work: true if it was queued and will not run,
  // false if it was not queued (a worker may already have taken it).
  bool CancelWork(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  // Makes the timer thread re-read the clock.
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);

  // Drops timers and queued work, then waits for running tasks and stops
  // the threads. Idempotent; later calls to Submit return false.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Work queued and not yet taken by a worker.
  size_t queued_work() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Timer {
    absl::Time due;
    Task on_due;
  };
  struct Queued {
    Priority priority;
    std::string fairness_key;
    Task task;
  };

  // The queued ids: urgent and background FIFOs per fairness key, keys
  // served in turn, keys new to the queue first. Not thread-safe (under
  // mu_).
  class FairQueue {
   public:
    void Push(const std::string& key, Priority priority, uint64_t id);
    // Removes a queued id.
    void Erase(const std::string& key, Priority priority, uint64_t id);
    // The next id to run, and its key in `*key`; work is queued. The item
    // counts as running under its key until Done(key).
    uint64_t Pop(std::string* key);
    void Done(const std::string& key);
    void Clear();

   private:
    enum class List { kNone, kNew, kOld };
    struct Lane {
      std::deque<uint64_t> urgent;
      std::deque<uint64_t> background;
      int running = 0;
      List list = List::kNone;  // kNone exactly when nothing is queued
      std::deque<uint64_t>& of(Priority p) {
        return p == Priority::kUrgent ? urgent : background;
      }
      bool empty() const { return urgent.empty() && background.empty(); }
    };
    // Forgets the lane if nothing of it is queued or running.
    void MaybeForget(absl::flat_hash_map<std::string, Lane>::iterator lane);
    // Keys with work queued or running.
    absl::flat_hash_map<std::string, Lane> lanes_;
    std::deque<std::string> new_;  // queued keys not served since they came
    std::deque<std::string> old_;  // the rotation: queued keys served before
  };

  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void WorkerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveTimerLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next queued id a worker should take (work is queued), and its
  // fairness key, for FairQueue::Done once it has run.
  uint64_t PopWorkLocked(std::string* fairness_key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;

  mutable Mutex mu_;
  CondVar timer_cv_;  // the earliest due time moved earlier, or stop
  CondVar work_cv_;   // work queued, or stop
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Due times in order; `timers_` holds each id's one entry.
  std::set<std::pair<absl::Time, uint64_t>> due_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Timer> timers_ ABSL_GUARDED_BY(mu_);
  FairQueue work_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Queued> queued_ ABSL_GUARDED_BY(mu_);

  Mutex threads_mu_;  // serialises Shutdown's joins
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(threads_mu_);
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_RENEWAL_SCHEDULER_H_
