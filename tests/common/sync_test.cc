#include "common/sync.h"

#include <thread>

#include "gtest/gtest.h"

namespace treezor {
namespace {

// A flag set by another thread, waited for with CondVar::WaitUntil.
class Flag {
 public:
  void Set() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    set_ = true;
    cv_.SignalAll();
  }
  bool WaitUntil(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, deadline,
                         [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           ++checks_;
                           return set_;
                         });
  }
  int checks() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return checks_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool set_ ABSL_GUARDED_BY(mu_) = false;
  int checks_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(CondVarWaitUntil, ReturnsAtOnceWhenTheConditionAlreadyHolds) {
  Flag flag;
  flag.Set();
  EXPECT_TRUE(flag.WaitUntil(absl::InfinitePast()));
  EXPECT_EQ(flag.checks(), 1);
}

TEST(CondVarWaitUntil, ReturnsTrueOnceAnotherThreadMakesItHold) {
  Flag flag;
  std::thread setter([&flag] { flag.Set(); });
  EXPECT_TRUE(flag.WaitUntil(absl::Now() + absl::Seconds(30)));
  setter.join();
}

TEST(CondVarWaitUntil, WaitsWithoutADeadlineForAsLongAsItTakes) {
  Flag flag;
  std::thread setter([&flag] {
    absl::SleepFor(absl::Milliseconds(20));
    flag.Set();
  });
  EXPECT_TRUE(flag.WaitUntil(absl::InfiniteFuture()));
  setter.join();
}

TEST(CondVarWaitUntil, ReturnsFalseWhenTheDeadlinePasses) {
  Flag flag;
  const absl::Time start = absl::Now();
  EXPECT_FALSE(flag.WaitUntil(start + absl::Milliseconds(50)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
}

TEST(CondVarWaitUntil, APastDeadlineStillChecksTheConditionOnce) {
  Flag flag;
  EXPECT_FALSE(flag.WaitUntil(absl::InfinitePast()));
  EXPECT_GE(flag.checks(), 1);
}

TEST(CondVarWaitFor, TimesOutWithoutASignal) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  EXPECT_FALSE(cv.WaitFor(&mu, absl::Milliseconds(10)));
  EXPECT_FALSE(cv.WaitFor(&mu, absl::ZeroDuration()));
}

}  // namespace
}  // namespace treezor
