// The broker's token cache: one entry per (tenant, scope set), single-flight
// fetching, and the background refresher that renews every entry in use
// before it expires.
//
//   TokenCache cache(&fetcher, settings.renewal,
//                    settings.upstream.max_concurrent_requests,
//                    {.clock = &clock});
//   cache.GetAsync({"acme", scopes}, {.min_ttl = absl::Minutes(5)},
//                  [](absl::StatusOr<TokenCache::TokenPtr> t) { ... });
//
// How it works:
//  - A hit (a cached token usable for at least `min_ttl`) answers inline,
//    under the entry's own lock only: callers of other entries never wait.
//  - A miss registers the caller as a waiter and queues one fetch for the
//    entry; every other caller arriving meanwhile joins the same waiters list
//    (single-flight). Fetches run on `max_concurrent_fetches` worker threads,
//    which is therefore the bound on requests in flight to Treezor across all
//    tenants. No lock is held during a fetch. Entries with waiting callers are
//    fetched before background renewals.
//  - After a fetch, the entry is scheduled for renewal at RenewAt() (jittered)
//    in a queue ordered by due time; one scheduler thread sleeps until the
//    earliest due time. A failed renewal is retried with capped exponential
//    backoff (full jitter, Retry-After honoured; refused credentials wait
//    `refused_backoff`) while the still-usable token keeps being served. Once
//    it is past its safety margin callers get the last error (UNAVAILABLE or
//    FAILED_PRECONDITION) straight away, without a fetch per caller, while
//    the retries go on in the background — so the entry recovers by itself.
//  - An entry nobody asked for during `idle_timeout` (and nobody watches) is
//    dropped when it next falls due instead of being renewed.
//
// Thread-safety: all public methods are thread-safe. Callbacks (waiters,
// subscribers) run without any cache lock held, on the caller's thread for a
// hit and on a worker thread otherwise; they must not block for long.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_CACHE_H_
#define TREEZOR_BROKER_SERVER_TOKEN_CACHE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"
#include "server/backoff.h"
#include "server/renewal_policy.h"
#include "server/scope_set.h"
#include "server/settings.h"
#include "server/token.h"
#include "server/token_fetcher.h"

namespace treezor::broker {

struct CacheKey {
  std::string tenant;
  ScopeSet scopes;

  friend bool operator==(const CacheKey&, const CacheKey&) = default;
  friend auto operator<=>(const CacheKey&, const CacheKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const CacheKey& k) {
    return H::combine(std::move(h), k.tenant, k.scopes);
  }
};

// A token as held by the cache: immutable once published, shared by readers.
struct CachedToken {
  Token token;
  // Increases by one with every token the entry obtains.
  uint64_t version = 0;
  std::string sha256_hex;   // of token.access_token
  std::string fingerprint;  // short form, for logs
};

// What the admin API and metrics see of an entry. Never the token itself.
struct EntrySnapshot {
  CacheKey key;
  enum class State { kFresh, kRenewing, kFailing, kExpired, kEmpty };
  State state = State::kEmpty;
  absl::Time expires_at = absl::InfinitePast();
  absl::Time usable_until = absl::InfinitePast();
  absl::Time last_renewal = absl::InfinitePast();
  absl::Time renew_at = absl::InfiniteFuture();
  absl::Time last_used = absl::InfinitePast();
  absl::Status last_error;
  int consecutive_failures = 0;
  int64_t fetch_count = 0;
  int64_t served_while_failing = 0;
  int subscribers = 0;
  std::string token_fingerprint;  // of the current token, if any
};

class TokenCache {
 public:
  using TokenPtr = std::shared_ptr<const CachedToken>;
  using Callback = std::function<void(absl::StatusOr<TokenPtr>)>;

  // What is not a setting (server/settings.h).
  struct Options {
    Clock* clock = SystemClock::Get();
    // Uniform samples in [0, 1] for jitter and backoff. Default: absl::BitGen.
    std::function<double()> random_unit;
  };

  struct GetOptions {
    // The token must be valid at least this long after now.
    absl::Duration min_ttl = absl::ZeroDuration();
    // Lowercase hex SHA-256 of a token Treezor refused; if it is still the
    // cached token, it is dropped and a new one fetched.
    std::string rejected_token_sha256;
    // The caller identity the request is made for (the one that matched the
    // policy), for per-caller accounting; empty for the broker's own work.
    std::string caller;
  };

  // One finished request to Treezor, as observers see it.
  struct FetchReport {
    absl::Status status;
    std::string outcome;     // FetchResult::outcome
    std::string grant_type;  // FetchResult::grant_type
    absl::Duration latency;
  };

  // Observers of cache activity (metrics, readiness). Called without locks
  // held; OnFetchDone after the entry has been updated.
  struct Observer {
    virtual ~Observer() = default;
    virtual void OnHit() {}
    virtual void OnMiss(bool joined_in_flight_fetch) {}
    virtual void OnFetchDone(const CacheKey& key, const FetchReport& report) {}
    // An idle entry was dropped instead of renewed.
    virtual void OnEntryDropped(const CacheKey& key) {}
  };

  // `fetcher` must outlive the cache. `max_concurrent_fetches` worker
  // threads (at least one): the bound on concurrent requests to Treezor.
  // Starts the threads.
  TokenCache(TokenFetcher* fetcher, const RenewalSettings& renewal,
             int max_concurrent_fetches, Options options);
  // Stops the threads; waiters still pending get UNAVAILABLE.
  ~TokenCache();

  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // Answers `done` exactly once: inline for a hit, later otherwise. Errors:
  // UNAVAILABLE / FAILED_PRECONDITION / NOT_FOUND from the fetcher (prefixed
  // as such), OUT_OF_RANGE when even a fresh token cannot satisfy min_ttl.
  // Returns the waiter's id when `done` will be called later (for
  // CancelWaiter), 0 when it has already been called.
  uint64_t GetAsync(const CacheKey& key, const GetOptions& options,
                    Callback done) ABSL_LOCKS_EXCLUDED(entries_mu_);

  // The caller of waiter `waiter` of `key` went away (cancelled, deadline
  // exceeded): if it still waits, it is removed and its callback runs now,
  // with CANCELLED. No-op if it was already answered.
  void CancelWaiter(const CacheKey& key, uint64_t waiter)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Blocking form of GetAsync. DEADLINE_EXCEEDED at `deadline` (real time).
  absl::StatusOr<TokenPtr> Get(const CacheKey& key, const GetOptions& options,
                               absl::Time deadline = absl::InfiniteFuture());

  // Creates the entry (if needed) and queues a background fetch: the
  // start-up warm-up of each tenant's default scopes.
  void Prefetch(const CacheKey& key) ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Calls `on_token` with every token the entry obtains whose version is
  // greater than `after_version` — at once if the current one is — until
  // Unsubscribe. A watched entry is never idle. Returns a handle.
  // If the entry is removed (tenant gone) `on_token` gets NOT_FOUND once.
  uint64_t Subscribe(const CacheKey& key, uint64_t after_version,
                     Callback on_token)
      ABSL_LOCKS_EXCLUDED(entries_mu_);
  void Unsubscribe(const CacheKey& key, uint64_t handle)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Forces a renewal now (joining one already running) and answers with the
  // resulting token or error.
  void RefreshAsync(const CacheKey& key, Callback done)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Drops every entry of `tenant` (it was removed from the config): pending
  // waiters get NOT_FOUND; the entries are not renewed any more.
  void RemoveTenant(const std::string& tenant)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Makes entries of `tenant` that are backing off after a failure retry now
  // (e.g. its secret changed).
  void RetryTenantNow(const std::string& tenant)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Renews every entry of `tenant` now, failing or not (its settings
  // changed). Callers keep getting the current token meanwhile.
  void RenewTenantNow(const std::string& tenant)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  std::vector<EntrySnapshot> Snapshot() const ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Requests to Treezor running right now.
  int fetches_in_flight() const { return in_flight_.load(); }

  // Set before traffic starts; not owned.
  void SetObserver(Observer* observer) { observer_ = observer; }

  // Wakes the scheduler to re-read the clock (FakeClock listeners call it).
  void Wake() ABSL_LOCKS_EXCLUDED(sched_mu_);

  // Answers pending waiters UNAVAILABLE (and any later caller), then stops
  // the threads (waiting for requests in flight); idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(entries_mu_, sched_mu_);

  // GetAsync callers of `key` still waiting (0 without an entry): lets tests
  // see that a caller who went away left no waiter behind.
  size_t waiters(const CacheKey& key) const ABSL_LOCKS_EXCLUDED(entries_mu_);

 private:
  struct Waiter {
    uint64_t id;
    absl::Duration min_ttl;
    Callback done;
  };
  enum class FetchState { kIdle, kQueued, kRunning };

  // One (tenant, scope set). Fields other than key/id are guarded by mu.
  struct Entry {
    Entry(CacheKey k, uint64_t i) : key(std::move(k)), id(i) {}
    const CacheKey key;
    const uint64_t id;
    Mutex mu;
    TokenPtr token ABSL_GUARDED_BY(mu);
    uint64_t last_version ABSL_GUARDED_BY(mu) = 0;
    FetchState fetch_state ABSL_GUARDED_BY(mu) = FetchState::kIdle;
    bool queued_urgent ABSL_GUARDED_BY(mu) = false;
    bool removed ABSL_GUARDED_BY(mu) = false;
    absl::Status last_error ABSL_GUARDED_BY(mu);
    int consecutive_failures ABSL_GUARDED_BY(mu) = 0;
    // Backoff gate: before this, callers get last_error instead of a fetch.
    absl::Time retry_not_before ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    absl::Time renew_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
    absl::Time last_renewal ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    absl::Time last_used ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    // Password grant refresh chain.
    std::string refresh_token ABSL_GUARDED_BY(mu);
    absl::Time chain_started_at ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    std::vector<Waiter> waiters ABSL_GUARDED_BY(mu);
    // Forced refreshes (admin): answered by the next fetch, whatever it is.
    std::vector<Callback> refresh_waiters ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<uint64_t, Callback> subscribers ABSL_GUARDED_BY(mu);
    uint64_t next_subscriber ABSL_GUARDED_BY(mu) = 1;
    uint64_t next_waiter ABSL_GUARDED_BY(mu) = 1;
    int64_t fetch_count ABSL_GUARDED_BY(mu) = 0;
    int64_t served_while_failing ABSL_GUARDED_BY(mu) = 0;
  };

  std::shared_ptr<Entry> FindOrCreate(const CacheKey& key)
      ABSL_LOCKS_EXCLUDED(entries_mu_);
  std::shared_ptr<Entry> Find(const CacheKey& key) const
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Queues one fetch for the entry unless one is queued or running.
  void StartFetchLocked(const std::shared_ptr<Entry>& entry, bool urgent)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu) ABSL_LOCKS_EXCLUDED(sched_mu_);
  // Sets the entry's one due time (replacing any earlier one).
  void ScheduleLocked(const std::shared_ptr<Entry>& entry, absl::Time due)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu) ABSL_LOCKS_EXCLUDED(sched_mu_);

  void WorkerLoop() ABSL_LOCKS_EXCLUDED(sched_mu_);
  void SchedulerLoop() ABSL_LOCKS_EXCLUDED(sched_mu_);
  void RunFetch(const std::shared_ptr<Entry>& entry);
  // Handles a due entry: drop it if idle, else fetch.
  void OnDue(const std::shared_ptr<Entry>& entry)
      ABSL_LOCKS_EXCLUDED(entries_mu_);
  void RemoveEntry(const std::shared_ptr<Entry>& entry)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  void FetchTenantNow(const std::string& tenant, bool only_failing)
      ABSL_LOCKS_EXCLUDED(entries_mu_);
  double Random() ABSL_LOCKS_EXCLUDED(random_mu_);
  BackoffSettings backoff_settings() const;

  TokenFetcher* const fetcher_;
  const RenewalSettings renewal_;
  const Options options_;
  Observer* observer_ = nullptr;

  mutable Mutex entries_mu_;
  absl::flat_hash_map<CacheKey, std::shared_ptr<Entry>> entries_
      ABSL_GUARDED_BY(entries_mu_);

  // Scheduler and work queues. Lock order: an entry's mu, then sched_mu_.
  mutable Mutex sched_mu_;
  CondVar sched_cv_;   // scheduler: something became due earlier, or stop
  CondVar work_cv_;    // workers: work queued, or stop
  bool stopping_ ABSL_GUARDED_BY(sched_mu_) = false;
  // Renewal/retry queue ordered by due time; `scheduled_` maps an entry id
  // to its one item in `due_`.
  struct Scheduled {
    std::weak_ptr<Entry> entry;
    absl::Time due;
  };
  std::set<std::pair<absl::Time, uint64_t>> due_ ABSL_GUARDED_BY(sched_mu_);
  absl::flat_hash_map<uint64_t, Scheduled> scheduled_
      ABSL_GUARDED_BY(sched_mu_);
  uint64_t next_entry_id_ ABSL_GUARDED_BY(entries_mu_) = 1;
  std::deque<std::shared_ptr<Entry>> urgent_work_ ABSL_GUARDED_BY(sched_mu_);
  std::deque<std::shared_ptr<Entry>> background_work_
      ABSL_GUARDED_BY(sched_mu_);

  Mutex random_mu_;
  std::function<double()> random_unit_ ABSL_GUARDED_BY(random_mu_);

  std::atomic<int> in_flight_{0};
  // Set first thing in Shutdown(); read under an entry's lock, so a caller
  // either sees it or is among the waiters Shutdown() answers.
  std::atomic<bool> shutting_down_{false};
  std::vector<std::thread> threads_;
};

const char* EntryStateName(EntrySnapshot::State state);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_CACHE_H_
