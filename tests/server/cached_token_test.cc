// CachedToken::derived (DerivedOnce): what the gRPC layer derives from a
// token is made once, whoever asks first and however many ask at once.
#include "server/cached_token.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/sync.h"
#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

TEST(DerivedOnceTest, ThreadsAskingAtOnceShareOneValueMadeOnce) {
  constexpr int kThreads = 8;
  CachedToken token;
  std::atomic<int> made{0};
  Mutex mu;
  CondVar cv;
  bool go = false;
  std::vector<const std::string*> seen(kThreads, nullptr);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      {
        MutexLock lock(&mu);
        while (!go) cv.Wait(&mu);
      }
      seen[i] = &token.derived.Get<std::string>([&] {
        made.fetch_add(1);
        return std::make_shared<const std::string>("serialized response");
      });
    });
  }
  {
    MutexLock lock(&mu);
    go = true;
    cv.SignalAll();
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(made.load(), 1);
  for (const std::string* s : seen) {
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s, seen[0]);
    EXPECT_EQ(*s, "serialized response");
  }
}

TEST(DerivedOnceTest, ACopyOfATokenDerivesItsOwn) {
  CachedToken original;
  original.token.access_token = "first";
  auto make_from = [](const CachedToken& t) {
    return [&t] { return std::make_shared<const std::string>(t.token.access_token); };
  };
  EXPECT_EQ(original.derived.Get<std::string>(make_from(original)), "first");
  CachedToken copy = original;
  copy.token.access_token = "second";
  EXPECT_EQ(copy.derived.Get<std::string>(make_from(copy)), "second");
  EXPECT_EQ(original.derived.Get<std::string>(make_from(original)), "first");
}

}  // namespace
}  // namespace treezor::broker
