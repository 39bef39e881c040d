#include "server/renewal_scheduler.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::FakeClock;
using Priority = RenewalScheduler::Priority;

constexpr absl::Duration kWait = absl::Seconds(10);

// Records what ran, in order; tests wait for entries instead of sleeping.
// A task can be made to block at the gate until the test opens it.
class Journal {
 public:
  RenewalScheduler::Task Note(std::string what) {
    return [this, what] {
      MutexLock lock(&mu_);
      ran_.push_back(what);
      cv_.SignalAll();
    };
  }
  // A task that notes `what`, then blocks until Open().
  RenewalScheduler::Task Blocking(std::string what) {
    return [this, what] {
      MutexLock lock(&mu_);
      ran_.push_back(what);
      ++blocked_;
      cv_.SignalAll();
      cv_.WaitUntil(&mu_, absl::InfiniteFuture(),
                    [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                      return open_;
                    });
      --blocked_;
      cv_.SignalAll();
    };
  }
  void Open() {
    MutexLock lock(&mu_);
    open_ = true;
    cv_.SignalAll();
  }
  bool WaitForCount(size_t n) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + kWait,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return ran_.size() >= n;
                         });
  }
  bool WaitForBlocked(int n) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + kWait,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return blocked_ >= n;
                         });
  }
  std::vector<std::string> ran() {
    MutexLock lock(&mu_);
    return ran_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::vector<std::string> ran_ ABSL_GUARDED_BY(mu_);
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
};

class RenewalSchedulerTest : public ::testing::Test {
 protected:
  void Start(int workers) {
    scheduler_ = std::make_unique<RenewalScheduler>(&clock_, workers);
    clock_.AddListener([this] { scheduler_->Wake(); });
  }
  void TearDown() override {
    journal_.Open();
    if (scheduler_ != nullptr) scheduler_->Shutdown();
  }

  FakeClock clock_;
  Journal journal_;
  std::unique_ptr<RenewalScheduler> scheduler_;
};

TEST_F(RenewalSchedulerTest, TimerRunsWhenTheClockReachesItsDueTime) {
  Start(1);
  scheduler_->ScheduleAt(1, clock_.MonotonicNow() + absl::Minutes(45),
                         journal_.Note("due"));
  clock_.Advance(absl::Minutes(44));
  // The timer thread re-read the clock (Wake) and found nothing due: a
  // second timer due now runs first, proving the first one was skipped.
  scheduler_->ScheduleAt(2, clock_.MonotonicNow(), journal_.Note("now"));
  ASSERT_TRUE(journal_.WaitForCount(1));
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(journal_.WaitForCount(2));
  EXPECT_THAT(journal_.ran(), ElementsAre("now", "due"));
}

TEST_F(RenewalSchedulerTest, WallClockStepsNeitherFireNorDelayTimers) {
  Start(1);
  scheduler_->ScheduleAt(1, clock_.MonotonicNow() + absl::Minutes(45),
                         journal_.Note("due"));
  clock_.StepWallClock(absl::Hours(2));  // forward: nothing is due yet
  scheduler_->ScheduleAt(2, clock_.MonotonicNow(), journal_.Note("marker"));
  ASSERT_TRUE(journal_.WaitForCount(1));
  clock_.StepWallClock(-absl::Hours(5));  // backward: still due on time
  clock_.Advance(absl::Minutes(45));
  ASSERT_TRUE(journal_.WaitForCount(2));
  EXPECT_THAT(journal_.ran(), ElementsAre("marker", "due"));
}

TEST_F(RenewalSchedulerTest, ScheduleAtReplacesTheIdsEarlierTimer) {
  Start(1);
  scheduler_->ScheduleAt(1, clock_.MonotonicNow() + absl::Minutes(1),
                         journal_.Note("first"));
  scheduler_->ScheduleAt(1, clock_.MonotonicNow() + absl::Minutes(2),
                         journal_.Note("second"));
  clock_.Advance(absl::Minutes(2));
  ASSERT_TRUE(journal_.WaitForCount(1));
  scheduler_->ScheduleAt(9, clock_.MonotonicNow(), journal_.Note("marker"));
  ASSERT_TRUE(journal_.WaitForCount(2));
  EXPECT_THAT(journal_.ran(), ElementsAre("second", "marker"));
}

TEST_F(RenewalSchedulerTest, CancelledTimerNeverRuns) {
  Start(1);
  scheduler_->ScheduleAt(1, clock_.MonotonicNow() + absl::Minutes(1),
                         journal_.Note("cancelled"));
  scheduler_->CancelTimer(1);
  clock_.Advance(absl::Minutes(5));
  scheduler_->ScheduleAt(2, clock_.MonotonicNow(), journal_.Note("marker"));
  ASSERT_TRUE(journal_.WaitForCount(1));
  EXPECT_THAT(journal_.ran(), ElementsAre("marker"));
}

TEST_F(RenewalSchedulerTest, UrgentWorkRunsBeforeBackgroundWork) {
  Start(1);
  ASSERT_TRUE(scheduler_->Submit(1, Priority::kUrgent,
                                 journal_.Blocking("blocker")));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  scheduler_->Submit(2, Priority::kBackground, journal_.Note("background-a"));
  scheduler_->Submit(3, Priority::kBackground, journal_.Note("background-b"));
  scheduler_->Submit(4, Priority::kUrgent, journal_.Note("urgent"));
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(4));
  EXPECT_THAT(journal_.ran(), ElementsAre("blocker", "urgent", "background-a",
                                          "background-b"));
}

// Issue 11 item 4: fairness across keys (tenants).
TEST_F(RenewalSchedulerTest, AnotherKeysFirstItemRunsRightAfterABurstInProgress) {
  Start(1);
  scheduler_->Submit(1, Priority::kUrgent, "a", journal_.Blocking("a0"));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  for (uint64_t id = 2; id <= 51; ++id) {
    scheduler_->Submit(id, Priority::kUrgent, "a",
                       journal_.Note(absl::StrCat("a", id)));
  }
  scheduler_->Submit(100, Priority::kUrgent, "b", journal_.Note("b"));
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(52));
  EXPECT_EQ(journal_.ran()[1], "b");
}

TEST_F(RenewalSchedulerTest, KeysTakeTurnsInRoundRobin) {
  Start(1);
  scheduler_->Submit(1, Priority::kUrgent, "z", journal_.Blocking("z"));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  for (uint64_t i = 1; i <= 3; ++i) {
    scheduler_->Submit(10 + i, Priority::kUrgent, "a",
                       journal_.Note(absl::StrCat("a", i)));
  }
  for (uint64_t i = 1; i <= 3; ++i) {
    scheduler_->Submit(20 + i, Priority::kUrgent, "b",
                       journal_.Note(absl::StrCat("b", i)));
  }
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(7));
  EXPECT_THAT(journal_.ran(),
              ElementsAre("z", "a1", "b1", "a2", "b2", "a3", "b3"));
}

TEST_F(RenewalSchedulerTest, AnotherKeysBackgroundWorkIsNotStarvedByUrgentWork) {
  Start(1);
  scheduler_->Submit(1, Priority::kUrgent, "a", journal_.Blocking("a0"));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  for (uint64_t id = 2; id <= 11; ++id) {
    scheduler_->Submit(id, Priority::kUrgent, "a",
                       journal_.Note(absl::StrCat("a", id)));
  }
  // A renewal of another tenant: one turn, not after the whole burst.
  scheduler_->Submit(100, Priority::kBackground, "b", journal_.Note("b"));
  scheduler_->Submit(101, Priority::kBackground, "a", journal_.Note("a-bg"));
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(13));
  const auto ran = journal_.ran();
  EXPECT_EQ(ran[1], "b");
  EXPECT_EQ(ran[12], "a-bg");  // within a key, urgent first
}

TEST_F(RenewalSchedulerTest, CancelledWorkLeavesTheKeysTurn) {
  Start(1);
  scheduler_->Submit(1, Priority::kUrgent, "z", journal_.Blocking("z"));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  scheduler_->Submit(2, Priority::kUrgent, "a", journal_.Note("a"));
  scheduler_->Submit(3, Priority::kBackground, "b", journal_.Note("b"));
  scheduler_->Submit(3, Priority::kUrgent, "b", journal_.Note("dup"));
  scheduler_->Submit(4, Priority::kUrgent, "c", journal_.Note("c"));
  EXPECT_TRUE(scheduler_->CancelWork(2));
  EXPECT_TRUE(scheduler_->CancelWork(3));
  EXPECT_EQ(scheduler_->queued_work(), 1u);
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(2));
  scheduler_->Submit(5, Priority::kBackground, "a", journal_.Note("marker"));
  ASSERT_TRUE(journal_.WaitForCount(3));
  EXPECT_THAT(journal_.ran(), ElementsAre("z", "c", "marker"));
}

TEST_F(RenewalSchedulerTest, QueuedIdRunsOnceAndIsPromotedWhenUrgent) {
  Start(1);
  scheduler_->Submit(1, Priority::kUrgent, journal_.Blocking("blocker"));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  scheduler_->Submit(2, Priority::kBackground, journal_.Note("other"));
  scheduler_->Submit(3, Priority::kBackground, journal_.Note("promoted"));
  scheduler_->Submit(3, Priority::kUrgent, journal_.Note("duplicate"));
  EXPECT_EQ(scheduler_->queued_work(), 2u);
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(3));
  // A marker proves nothing else was left to run before it.
  scheduler_->Submit(9, Priority::kBackground, journal_.Note("marker"));
  ASSERT_TRUE(journal_.WaitForCount(4));
  EXPECT_THAT(journal_.ran(),
              ElementsAre("blocker", "promoted", "other", "marker"));
}

TEST_F(RenewalSchedulerTest, CancelledWorkIsWithdrawnBeforeItRuns) {
  Start(1);
  scheduler_->Submit(1, Priority::kUrgent, journal_.Blocking("blocker"));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  scheduler_->Submit(2, Priority::kUrgent, journal_.Note("withdrawn"));
  EXPECT_TRUE(scheduler_->CancelWork(2));
  EXPECT_FALSE(scheduler_->CancelWork(2));
  EXPECT_FALSE(scheduler_->CancelWork(1));  // already running
  scheduler_->Submit(3, Priority::kBackground, journal_.Note("marker"));
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(2));
  EXPECT_THAT(journal_.ran(), ElementsAre("blocker", "marker"));
}

TEST_F(RenewalSchedulerTest, WorkerCountBoundsTasksRunningAtOnce) {
  Start(2);
  for (uint64_t id = 1; id <= 5; ++id) {
    scheduler_->Submit(id, Priority::kUrgent,
                       journal_.Blocking(absl::StrCat("task", id)));
  }
  ASSERT_TRUE(journal_.WaitForBlocked(2));
  EXPECT_THAT(journal_.ran(), ::testing::SizeIs(2));
  EXPECT_EQ(scheduler_->queued_work(), 3u);
  journal_.Open();
  ASSERT_TRUE(journal_.WaitForCount(5));
}

TEST_F(RenewalSchedulerTest, ShutdownDropsQueuedWorkAndTimersAndWaitsForRunningTasks) {
  Start(1);
  scheduler_->Submit(1, Priority::kUrgent, journal_.Blocking("running"));
  ASSERT_TRUE(journal_.WaitForBlocked(1));
  // The running task is released when Shutdown drops the queued one (its
  // captures are destroyed then), so the queued task can never sneak in.
  struct OpenWhenDropped {
    explicit OpenWhenDropped(Journal* j) : journal(j) {}
    ~OpenWhenDropped() { journal->Open(); }
    Journal* journal;
  };
  scheduler_->Submit(2, Priority::kUrgent,
                     [guard = std::make_shared<OpenWhenDropped>(&journal_),
                      note = journal_.Note("queued")] { note(); });
  scheduler_->ScheduleAt(3, clock_.MonotonicNow() + absl::Minutes(1),
                         journal_.Note("timer"));
  scheduler_->Shutdown();  // returns once the running task is done
  clock_.Advance(absl::Minutes(2));
  EXPECT_THAT(journal_.ran(), ElementsAre("running"));
  EXPECT_FALSE(scheduler_->Submit(4, Priority::kUrgent, journal_.Note("late")));
  EXPECT_EQ(scheduler_->queued_work(), 0u);
}

TEST_F(RenewalSchedulerTest, TasksMaySubmitAndScheduleMoreWork) {
  Start(1);
  scheduler_->ScheduleAt(1, clock_.MonotonicNow(), [this] {
    scheduler_->Submit(1, Priority::kBackground, [this] {
      scheduler_->ScheduleAt(1, clock_.MonotonicNow() + absl::Minutes(45),
                             journal_.Note("next due"));
      journal_.Note("renewed")();
    });
  });
  ASSERT_TRUE(journal_.WaitForCount(1));
  clock_.Advance(absl::Minutes(45));
  ASSERT_TRUE(journal_.WaitForCount(2));
  EXPECT_THAT(journal_.ran(), ElementsAre("renewed", "next due"));
}

TEST(RenewalSchedulerIdle, NothingRunsWithoutWork) {
  FakeClock clock;
  RenewalScheduler scheduler(&clock, 2);
  EXPECT_EQ(scheduler.queued_work(), 0u);
  scheduler.Shutdown();
  scheduler.Shutdown();  // idempotent
}

}  // namespace
}  // namespace treezor::broker
