// ThreadSnapshots and SnapshotSource (client/hit_snapshot.h): what a
// snapshot answers, when it stops, and, under ThreadSanitizer (label
// "concurrency"), that readers racing a writer never see a value older than
// one they were told about.
#include "client/hit_snapshot.h"

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sync.h"
#include "gtest/gtest.h"

namespace treezor::client::internal {
namespace {

using Snapshots = ThreadSnapshots<std::string>;

constexpr absl::Duration kMaxAge = absl::Seconds(1);
const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

// A key with the scopes kept alive for the view.
struct TestKey {
  explicit TestKey(std::string t, std::vector<std::string> s = {"read_all"})
      : tenant(std::move(t)), scopes(std::move(s)), canonical(scopes) {}
  CacheKeyView view() const { return {tenant, canonical.view()}; }
  std::string tenant;
  std::vector<std::string> scopes;
  CanonicalScopes canonical;
};

std::shared_ptr<const std::string> Value(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

TEST(ThreadSnapshots, AnswersWhatWasPutUntilTheGenerationMoves) {
  SnapshotSource source;
  const TestKey key("acme");
  EXPECT_EQ(Snapshots::Find(source, key.view(), kT0, kMaxAge), nullptr);
  Snapshots::Put(source, key.view(), Value("token-1"), source.generation(),
                 kT0);
  Snapshots::Slot* slot = Snapshots::Find(source, key.view(), kT0, kMaxAge);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(*slot->value, "token-1");
  // Another order of the same scopes is the same key.
  const TestKey reordered("acme", {"read_all", "read_all"});
  EXPECT_NE(Snapshots::Find(source, reordered.view(), kT0, kMaxAge), nullptr);
  // Another key is not.
  EXPECT_EQ(Snapshots::Find(source, TestKey("globex").view(), kT0, kMaxAge),
            nullptr);

  source.Invalidate();
  EXPECT_EQ(Snapshots::Find(source, key.view(), kT0, kMaxAge), nullptr);
  // A snapshot taken at a generation older than the current one (read
  // before a change another thread made) never answers either.
  Snapshots::Put(source, key.view(), Value("token-1"), source.generation() - 1,
                 kT0);
  EXPECT_EQ(Snapshots::Find(source, key.view(), kT0, kMaxAge), nullptr);
  Snapshots::Put(source, key.view(), Value("token-2"), source.generation(),
                 kT0);
  slot = Snapshots::Find(source, key.view(), kT0, kMaxAge);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(*slot->value, "token-2");
}

TEST(ThreadSnapshots, StopsAnsweringMaxAgeAfterItWasTakenOrIfTheClockWentBack) {
  SnapshotSource source;
  const TestKey key("acme");
  Snapshots::Put(source, key.view(), Value("t"), source.generation(), kT0);
  EXPECT_NE(Snapshots::Find(source, key.view(),
                            kT0 + kMaxAge - absl::Nanoseconds(1), kMaxAge),
            nullptr);
  EXPECT_EQ(Snapshots::Find(source, key.view(), kT0 + kMaxAge, kMaxAge),
            nullptr);
  EXPECT_EQ(Snapshots::Find(source, key.view(), kT0 - absl::Nanoseconds(1),
                            kMaxAge),
            nullptr);
  // Taking it again (the owner's locked path) restarts the age.
  Snapshots::Put(source, key.view(), Value("t"), source.generation(),
                 kT0 + kMaxAge);
  EXPECT_NE(Snapshots::Find(source, key.view(), kT0 + kMaxAge, kMaxAge),
            nullptr);
  // A zero max_age: every call takes the locked path.
  EXPECT_EQ(Snapshots::Find(source, key.view(), kT0 + kMaxAge,
                            absl::ZeroDuration()),
            nullptr);
}

TEST(ThreadSnapshots, SourcesNeverSeeEachOthersSnapshotsNorADestroyedOnes) {
  const TestKey key("acme");
  std::optional<SnapshotSource> first;
  first.emplace();
  SnapshotSource second;
  Snapshots::Put(*first, key.view(), Value("first's"), first->generation(),
                 kT0);
  EXPECT_EQ(Snapshots::Find(second, key.view(), kT0, kMaxAge), nullptr);
  const uint64_t first_id = first->id();
  // A source made in the very storage of a destroyed one (the same address)
  // gets another id, and none of the old one's snapshots.
  first.reset();
  first.emplace();
  EXPECT_NE(first->id(), first_id);
  EXPECT_EQ(first->generation(), 0u);
  EXPECT_EQ(Snapshots::Find(*first, key.view(), kT0, kMaxAge), nullptr);
}

TEST(ThreadSnapshots, SnapshotsBelongToTheThreadThatTookThem) {
  SnapshotSource source;
  const TestKey key("acme");
  Snapshots::Put(source, key.view(), Value("t"), source.generation(), kT0);
  bool found_elsewhere = true;
  std::thread other([&] {
    found_elsewhere =
        Snapshots::Find(source, key.view(), kT0, kMaxAge) != nullptr;
  });
  other.join();
  EXPECT_FALSE(found_elsewhere);
  EXPECT_NE(Snapshots::Find(source, key.view(), kT0, kMaxAge), nullptr);
}

TEST(ThreadSnapshots, TheTableIsEmptiedPastItsBound) {
  // On a thread of its own, so other tests' snapshots do not count.
  std::thread([] {
    SnapshotSource source;
    std::vector<std::unique_ptr<TestKey>> keys;
    for (size_t i = 0; i <= Snapshots::kMaxSlots; ++i) {
      keys.push_back(std::make_unique<TestKey>(absl::StrCat("tenant", i)));
    }
    for (size_t i = 0; i < Snapshots::kMaxSlots; ++i) {
      Snapshots::Put(source, keys[i]->view(), Value("t"), 0, kT0);
    }
    EXPECT_EQ(Snapshots::SizeForTesting(), Snapshots::kMaxSlots);
    // Refreshing a key it holds does not grow it.
    Snapshots::Put(source, keys[0]->view(), Value("t"), 0, kT0);
    EXPECT_EQ(Snapshots::SizeForTesting(), Snapshots::kMaxSlots);
    // One more key: the table starts over with it.
    Snapshots::Put(source, keys.back()->view(), Value("t"), 0, kT0);
    EXPECT_EQ(Snapshots::SizeForTesting(), 1u);
    EXPECT_EQ(Snapshots::Find(source, keys[0]->view(), kT0, kMaxAge), nullptr);
    EXPECT_NE(Snapshots::Find(source, keys.back()->view(), kT0, kMaxAge),
              nullptr);
  }).join();
}

TEST(ThreadSnapshots, SharedHandsOutTheValueThroughAThreadPrivateHolder) {
  SnapshotSource source;
  const TestKey key("acme");
  const std::shared_ptr<const std::string> value = Value("token-1");
  Snapshots::Slot& slot =
      Snapshots::Put(source, key.view(), value, source.generation(), kT0);
  const long references = value.use_count();  // ours and the slot's
  std::shared_ptr<const std::string> a = slot.Shared();
  std::shared_ptr<const std::string> b = slot.Shared();
  // The very value, not a copy ...
  EXPECT_EQ(a.get(), value.get());
  EXPECT_EQ(b.get(), value.get());
  // ... and handing it out did not touch the value's own reference count
  // (the one every thread shares), only the holder's.
  EXPECT_EQ(value.use_count(), references + 1);  // + the holder
  EXPECT_EQ(a.use_count(), 3);                   // slot, a, b

  // A refresh with the same value keeps the holder; a new value gets a new
  // one, and pointers handed out before keep the old value alive.
  Snapshots::Put(source, key.view(), value, source.generation(), kT0);
  EXPECT_EQ(slot.Shared(), a);
  std::weak_ptr<const std::string> old_value = value;
  Snapshots::Slot& replaced = Snapshots::Put(
      source, key.view(), Value("token-2"), source.generation(), kT0);
  EXPECT_EQ(*replaced.Shared(), "token-2");
  EXPECT_EQ(*a, "token-1");
  b.reset();
  EXPECT_FALSE(old_value.expired());
  a.reset();
  EXPECT_EQ(value.use_count(), references - 1);  // only ours now
}

// A cache of one value in the owner's way (a mutex, Invalidate with every
// change) read through snapshots by several threads while a writer replaces
// it. A reader that was told of version v (by an atomic, as an event would)
// must never read an older one; under TSan, no access may race.
class VersionedValue {
 public:
  VersionedValue() { current_ = std::make_shared<const int>(0); }

  void Set(int v) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    current_ = std::make_shared<const int>(v);
    source_.Invalidate();
  }

  // The hit path of a reader on its own thread.
  std::shared_ptr<const int> Get(const CacheKeyView& key, absl::Time now,
                                 bool shared) ABSL_LOCKS_EXCLUDED(mu_) {
    ThreadSnapshots<int>::Slot* slot =
        ThreadSnapshots<int>::Find(source_, key, now, kMaxAge);
    if (slot == nullptr) {
      uint64_t generation;
      std::shared_ptr<const int> value;
      {
        MutexLock lock(&mu_);
        generation = source_.generation();
        value = current_;
      }
      slot = &ThreadSnapshots<int>::Put(source_, key, std::move(value),
                                        generation, now);
    }
    return shared ? slot->Shared() : slot->value;
  }

 private:
  Mutex mu_;
  SnapshotSource source_;
  std::shared_ptr<const int> current_ ABSL_GUARDED_BY(mu_);
};

TEST(ThreadSnapshots, ReadersRacingAWriterNeverGoBack) {
  constexpr int kReaders = 3;
  constexpr int kVersions = 2000;
  VersionedValue cache;
  std::atomic<int> published{0};
  std::atomic<bool> done{false};
  // Pointers handed out by the readers, dropped by another thread: the
  // holders' reference counts are then shared after all, and must hold.
  Mutex handed_mu;
  std::deque<std::shared_ptr<const int>> handed;  // guarded by handed_mu
  std::atomic<int> stale{0};
  std::atomic<int> reads{0};

  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      const TestKey key("acme");
      int last = 0;
      for (int i = 0; !done.load(std::memory_order_acquire); ++i) {
        const int told = published.load(std::memory_order_acquire);
        // The clock moves now and then, so some reads retake the snapshot
        // for its age rather than for a new generation.
        const absl::Time now = kT0 + absl::Milliseconds(i / 64 * 600);
        std::shared_ptr<const int> v = cache.Get(key.view(), now, i % 2 == r % 2);
        if (*v < told || *v < last) stale.fetch_add(1);
        last = *v;
        reads.fetch_add(1, std::memory_order_relaxed);
        if (i % 16 == 0) {
          MutexLock lock(&handed_mu);
          handed.push_back(std::move(v));
        }
      }
    });
  }
  std::thread dropper([&] {
    while (!done.load(std::memory_order_acquire)) {
      std::shared_ptr<const int> v;
      {
        MutexLock lock(&handed_mu);
        if (!handed.empty()) {
          v = std::move(handed.front());
          handed.pop_front();
        }
      }
      if (v == nullptr) std::this_thread::yield();
      v.reset();
    }
  });
  for (int v = 1; v <= kVersions; ++v) {
    cache.Set(v);
    published.store(v, std::memory_order_release);
    if (v % 128 == 0) std::this_thread::yield();
  }
  // Let every reader read the last version at least once.
  const int reads_at_end = reads.load();
  while (reads.load() < reads_at_end + 10 * kReaders) std::this_thread::yield();
  done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  dropper.join();
  EXPECT_EQ(stale.load(), 0);
}

}  // namespace
}  // namespace treezor::client::internal
