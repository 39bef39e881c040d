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

bool RenewalScheduler::Submit(uint64_t id, Priority priority, Task task) {
  MutexLock lock(&mu_);
  if (stopping_) return false;
  auto [it, inserted] = queued_.try_emplace(id, Queued{priority, nullptr});
  if (inserted) {
    it->second.task = std::move(task);
    (priority == Priority::kUrgent ? urgent_ : background_).push_back(id);
    work_cv_.Signal();
    return true;
  }
  if (priority == Priority::kUrgent &&
      it->second.priority == Priority::kBackground) {
    it->second.priority = Priority::kUrgent;
    background_.erase(std::find(background_.begin(), background_.end(), id));
    urgent_.push_back(id);
  }
  return true;
}

bool RenewalScheduler::CancelWork(uint64_t id) {
  MutexLock lock(&mu_);
  auto it = queued_.find(id);
  if (it == queued_.end()) return false;
  auto& queue =
      it->second.priority == Priority::kUrgent ? urgent_ : background_;
  queue.erase(std::find(queue.begin(), queue.end(), id));
  queued_.erase(it);
  return true;
}

size_t RenewalScheduler::queued_work() const {
  MutexLock lock(&mu_);
  return queued_.size();
}

void RenewalScheduler::Wake() {
  MutexLock lock(&mu_);
  timer_cv_.Signal();
}

uint64_t RenewalScheduler::PopWorkLocked() {
  auto& queue = urgent_.empty() ? background_ : urgent_;
  const uint64_t id = queue.front();
  queue.pop_front();
  return id;
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
    {
      MutexLock lock(&mu_);
      while (!stopping_ && queued_.empty()) work_cv_.Wait(&mu_);
      if (stopping_) return;
      auto it = queued_.find(PopWorkLocked());
      task = std::move(it->second.task);
      queued_.erase(it);
    }
    task();
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
    urgent_.clear();
    background_.clear();
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
