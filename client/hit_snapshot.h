// The lock-free side of TokenClient's cache hit: per-thread snapshots of the
// cache, valid while the cache's generation has not moved.
//
// Why: a hit that takes the cache's one mutex, writes the entry's last-use
// time and copies a shared_ptr writes three shared cache lines per call, so
// two threads hitting the same entry each run 2.5-3x slower than one alone.
// Here a hit reads one shared word (the generation, which only changes when
// a cached token does) and otherwise touches memory private to its thread.
//
//   // The owner (one per cache), and under its lock on every change of what
//   // a hit may return: source.Invalidate().
//   SnapshotSource source;
//   // A hit, without the lock:
//   if (auto* slot = ThreadSnapshots<V>::Find(source, key, now, max_age)) {
//     use(*slot->value);
//   } else {
//     uint64_t generation;
//     std::shared_ptr<const V> v;
//     { MutexLock lock(&mu); generation = source.generation(); v = ...; }
//     ThreadSnapshots<V>::Put(source, key, std::move(v), generation, now);
//   }
//
// Correctness rests on two rules the owner keeps: the generation is read
// under the same lock as the value it is stored with, and every change of a
// value a hit could return bumps it (under that lock, before releasing it).
// A snapshot of generation g then holds exactly what the locked path would
// have returned at g; a thread that learns of a change in any way that
// orders it after the change (an event, a lock, a join) loads a newer
// generation and takes the locked path again.
//
// Snapshots are keyed by the source's id, from a process-wide counter and
// never reused (an address could be: a client destroyed and another created
// at the same place must not answer with the first one's tokens). A
// snapshot holds a reference to its value: a replaced or destroyed source's
// values stay in memory until the thread retakes that key, empties its
// table (kMaxSlots) or exits.
//
// Not public API: used by TokenClient only. No gRPC dependency, so the
// ThreadSanitizer build tests it (tests/client/hit_snapshot_test.cc).
#ifndef TREEZOR_BROKER_CLIENT_HIT_SNAPSHOT_H_
#define TREEZOR_BROKER_CLIENT_HIT_SNAPSHOT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "client/cache_key.h"

namespace treezor::client::internal {

// The owner's side: an id and a generation. Thread-safe.
class SnapshotSource {
 public:
  SnapshotSource() : id_(NextId()) {}
  SnapshotSource(const SnapshotSource&) = delete;
  SnapshotSource& operator=(const SnapshotSource&) = delete;

  uint64_t id() const { return id_; }
  // Acquire: pairs with Invalidate, so a thread that saw a change made
  // before an Invalidate sees the new generation too.
  uint64_t generation() const {
    return generation_.load(std::memory_order_acquire);
  }
  // Every snapshot taken so far stops answering. Call it under the lock
  // that guards the values, in the same critical section as the change.
  void Invalidate() { generation_.fetch_add(1, std::memory_order_acq_rel); }

 private:
  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  const uint64_t id_;
  // Its own cache line: every hit of every thread reads it, so a write to
  // a neighbour (the owner's mutex, its counters) must not evict it.
  // (alignas also rounds the class up to whole lines, so nothing follows
  // it on this one.)
  alignas(64) std::atomic<uint64_t> generation_{0};
};

// The calling thread's snapshots of every source it used, at most kMaxSlots
// of them (past that the table is emptied: a thread using that many scope
// sets pays one locked lookup per set once more, and stale snapshots of
// destroyed sources cannot pile up). Static members only: the table is
// thread_local.
template <typename V>
class ThreadSnapshots {
 public:
  static constexpr size_t kMaxSlots = 64;

  struct Slot {
    // One reference to the owner's value, taken under the owner's lock.
    std::shared_ptr<const V> value;
    uint64_t generation = 0;
    // When this thread last took the owner's locked path for this key (the
    // owner's clock): Find stops answering `max_age` after it, so the owner
    // still hears of a key in use about that often.
    absl::Time taken_at = absl::InfinitePast();

    // The value again, through a holder of this thread's own: the control
    // block of the returned pointer's copies is this thread's, not the one
    // every thread shares, so handing the value out costs no contended
    // atomic. Copies keep the value alive wherever they go.
    const std::shared_ptr<const V>& Shared() {
      if (shared_ == nullptr) {
        auto holder = std::make_shared<const std::shared_ptr<const V>>(value);
        shared_ = std::shared_ptr<const V>(holder, value.get());
      }
      return shared_;
    }

   private:
    friend class ThreadSnapshots;
    std::shared_ptr<const V> shared_;  // made by the first Shared()
  };

  // This thread's snapshot of `key` in `source`, if it is of the current
  // generation and was taken within `max_age` before `now` (and not after
  // it: a clock stepped back also sends the caller to the locked path).
  // The caller still checks that the value suits the call. Null otherwise.
  // The pointer stays valid until this thread's next Put.
  static Slot* Find(const SnapshotSource& source, const CacheKeyView& key,
                    absl::Time now, absl::Duration max_age) {
    const uint64_t generation = source.generation();
    Local& local = Local::Get();
    // The key this thread asked for last, compared in place: a thread
    // usually asks for one or a few scope sets, and comparing a tenant and a
    // few scopes costs a fraction of hashing them (measured: the hash was a
    // quarter of the hit).
    typename Map::value_type* found = local.last;
    if (found == nullptr ||
        !Eq()(found->first, KeyView{source.id(), key})) {
      auto it = local.map.find(KeyView{source.id(), key});
      if (it == local.map.end()) return nullptr;
      found = &*it;
      local.last = found;
    }
    Slot& slot = found->second;
    if (slot.generation != generation || now < slot.taken_at ||
        now - slot.taken_at >= max_age) {
      return nullptr;
    }
    return &slot;
  }

  // Records `value`, read with `generation` under the owner's lock, as this
  // thread's snapshot of `key` in `source`, taken at `now`. The reference
  // stays valid until this thread's next Put.
  static Slot& Put(const SnapshotSource& source, const CacheKeyView& key,
                   std::shared_ptr<const V> value, uint64_t generation,
                   absl::Time now) {
    Local& local = Local::Get();
    auto it = local.map.find(KeyView{source.id(), key});
    if (it == local.map.end()) {
      if (local.map.size() >= kMaxSlots) local.map.clear();
      // (May rehash, moving every slot: `last` is set again below.)
      it = local.map.emplace(Key{source.id(), CacheKey::From(key)}, Slot())
               .first;
    }
    local.last = &*it;
    Slot& slot = it->second;
    // The same value again (a refresh after max_age) keeps its holder.
    if (slot.value != value) slot.shared_ = nullptr;
    slot.value = std::move(value);
    slot.generation = generation;
    slot.taken_at = now;
    return slot;
  }

  // This thread's snapshots (all sources), for tests.
  static size_t SizeForTesting() { return Local::Get().map.size(); }

 private:
  struct Key {
    uint64_t source;
    CacheKey key;
  };
  struct KeyView {
    uint64_t source;
    CacheKeyView key;
  };
  // Transparent: a KeyView (the caller's strings) finds a Key without a
  // copy. Hashes like CacheKeyHash, with the source id first.
  struct Hash {
    using is_transparent = void;
    size_t operator()(const Key& k) const {
      return absl::HashOf(k.source, k.key);
    }
    size_t operator()(const KeyView& k) const {
      return absl::HashOf(k.source, k.key);
    }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(const Key& a, const Key& b) const {
      return a.source == b.source && a.key == b.key;
    }
    bool operator()(const Key& a, const KeyView& b) const {
      return a.source == b.source && CacheKeyEq::Equal(a.key, b.key);
    }
    bool operator()(const KeyView& a, const Key& b) const {
      return (*this)(b, a);
    }
  };
  using Map = absl::flat_hash_map<Key, Slot, Hash, Eq>;

  // One thread's table. Only Put changes `map`, and it sets `last` after,
  // so `last` never points into a rehashed or cleared table.
  struct Local {
    Map map;
    typename Map::value_type* last = nullptr;  // in `map`; null: none yet

    static Local& Get() {
      thread_local Local local;
      return local;
    }
  };
};

}  // namespace treezor::client::internal

#endif  // TREEZOR_BROKER_CLIENT_HIT_SNAPSHOT_H_
