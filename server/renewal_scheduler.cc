#include "server/renewal_scheduler.h"

#include <algorithm>

namespace treezor::broker {

RenewalScheduler::RenewalScheduler(const Clock* clock, int workers)
    : clock_(clock) {
  MutexLock lock(&threads_mu_);
  const int n = std::max(1, workers);
  threads_.reserve(n + 1);
  threads_.emplace_back([this] { TimerLoop(); });
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

RenewalScheduler::~RenewalScheduler() { Shutdown(); }

void RenewalScheduler::ScheduleAt(uint64_t id, absl::Time due, Task on_due) {
  MutexLock lock(&mu_);
  if (stopping_) return;
  RemoveTimerLocked(id);
  const bool earliest = due_.empty() || due < due_.begin()->first;
  due_.insert({due, id});
  timers_.emplace(id, Timer{due, std::move(on_due)});
  if (earliest) timer_cv_.Signal();
}

void RenewalScheduler::CancelTimer(uint64_t id) {
  MutexLock lock(&mu_);
  RemoveTimerLocked(id);
}

void RenewalScheduler::RemoveTimerLocked(uint64_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  due_.erase({it->second.due, id});
  timers_.erase(it);
}

bool RenewalScheduler::Submit(uint64_t id, Priority priority,
                              const std::string& fairness_key, Task task) {
  MutexLock lock(&mu_);
  if (stopping_) return false;
  auto [it, inserted] =
      queued_.try_emplace(id, Queued{priority, fairness_key, nullptr});
  if (inserted) {
    it->second.task = std::move(task);
    work_.Push(fairness_key, priority, id);
    work_cv_.Signal();
    return true;
  }
  if (priority == Priority::kUrgent &&
      it->second.priority == Priority::kBackground) {
    it->second.priority = Priority::kUrgent;
    // Same key, so the same lane and turn: only its FIFO changes.
    work_.Erase(it->second.fairness_key, Priority::kBackground, id);
    work_.Push(it->second.fairness_key, Priority::kUrgent, id);
  }
  return true;
}

bool RenewalScheduler::CancelWork(uint64_t id) {
  MutexLock lock(&mu_);
  auto it = queued_.find(id);
  if (it == queued_.end()) return false;
  work_.Erase(it->second.fairness_key, it->second.priority, id);
  queued_.erase(it);
  return true;
}

void RenewalScheduler::FairQueue::Push(const std::string& key,
                                       Priority priority, uint64_t id) {
  auto [it, inserted] = lanes_.try_emplace(key);
  Lane& lane = it->second;
  if (lane.list == List::kNone) {
    // New (nothing queued or running): ahead of the rotation. Served before
    // and still running: the rotation's tail.
    lane.list = inserted ? List::kNew : List::kOld;
    (inserted ? new_ : old_).push_back(key);
  }
  lane.of(priority).push_back(id);
}

void RenewalScheduler::FairQueue::Erase(const std::string& key,
                                        Priority priority, uint64_t id) {
  auto it = lanes_.find(key);
  if (it == lanes_.end()) return;
  Lane& lane = it->second;
  auto& ids = lane.of(priority);
  auto pos = std::find(ids.begin(), ids.end(), id);
  if (pos == ids.end()) return;
  ids.erase(pos);
  if (!lane.empty()) return;
  std::deque<std::string>& list = lane.list == List::kNew ? new_ : old_;
  list.erase(std::find(list.begin(), list.end(), key));
  lane.list = List::kNone;
  MaybeForget(it);
}

uint64_t RenewalScheduler::FairQueue::Pop(std::string* key) {
  std::deque<std::string>& turn = new_.empty() ? old_ : new_;
  *key = std::move(turn.front());
  turn.pop_front();
  Lane& lane = lanes_.find(*key)->second;
  auto& ids = lane.urgent.empty() ? lane.background : lane.urgent;
  const uint64_t id = ids.front();
  ids.pop_front();
  ++lane.running;
  if (lane.empty()) {
    lane.list = List::kNone;
  } else {
    lane.list = List::kOld;
    old_.push_back(*key);
  }
  return id;
}

void RenewalScheduler::FairQueue::Done(const std::string& key) {
  auto it = lanes_.find(key);
  if (it == lanes_.end()) return;  // cleared by Shutdown
  --it->second.running;
  MaybeForget(it);
}

void RenewalScheduler::FairQueue::MaybeForget(
    absl::flat_hash_map<std::string, Lane>::iterator lane) {
  if (lane->second.list == List::kNone && lane->second.running <= 0) {
    lanes_.erase(lane);
  }
}

void RenewalScheduler::FairQueue::Clear() {
  lanes_.clear();
  new_.clear();
  old_.clear();
}

size_t RenewalScheduler::queued_work() const {
  MutexLock lock(&mu_);
  return queued_.size();
}

void RenewalScheduler::Wake() {
  MutexLock lock(&mu_);
  timer_cv_.Signal();
}

uint64_t RenewalScheduler::PopWorkLocked(std::string* fairness_key) {
  return work_.Pop(fairness_key);
}

void RenewalScheduler::TimerLoop() {
  mu_.Lock();
  while (!stopping_) {
    const absl::Time now = clock_->MonotonicNow();
    std::vector<Task> due_tasks;
    while (!due_.empty() && due_.begin()->first <= now) {
      const uint64_t id = due_.begin()->second;
      due_.erase(due_.begin());
      auto it = timers_.find(id);
      due_tasks.push_back(std::move(it->second.on_due));
      timers_.erase(it);
    }
    if (!due_tasks.empty()) {
      mu_.Unlock();
      for (Task& task : due_tasks) task();
      due_tasks.clear();  // destroy captures without the lock
      mu_.Lock();
      continue;
    }
    const absl::Duration wait =
        due_.empty() ? absl::Hours(1) : due_.begin()->first - now;
    timer_cv_.WaitFor(&mu_, std::max(wait, absl::Milliseconds(1)));
  }
  mu_.Unlock();
}

void RenewalScheduler::WorkerLoop() {
  for (;;) {
    Task task;
    std::string fairness_key;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && queued_.empty()) work_cv_.Wait(&mu_);
      if (stopping_) return;
      auto it = queued_.find(PopWorkLocked(&fairness_key));
      task = std::move(it->second.task);
      queued_.erase(it);
    }
    task();
    task = nullptr;  // its captures go without the lock
    MutexLock lock(&mu_);
    work_.Done(fairness_key);
  }
}

void RenewalScheduler::Shutdown() {
  std::vector<Task> dropped;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, timer] : timers_) dropped.push_back(std::move(timer.on_due));
    for (auto& [id, queued] : queued_) dropped.push_back(std::move(queued.task));
    due_.clear();
    timers_.clear();
    work_.Clear();
    queued_.clear();
    timer_cv_.SignalAll();
    work_cv_.SignalAll();
  }
  dropped.clear();  // their captures go without the lock, before the wait
  MutexLock lock(&threads_mu_);
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

}  // namespace treezor::broker
