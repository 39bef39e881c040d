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
//    (single-flight). Fetches run on the `max_concurrent_fetches` worker
//    threads of a RenewalScheduler (server/renewal_scheduler.h), which is
//    therefore the bound on requests in flight to Treezor across all
//    tenants. No lock is held during a fetch. Tenants take turns (the
//    scheduler's fairness key is the tenant), so one tenant's burst of cold
//    requests delays another tenant's first fetch or renewal by about one
//    upstream round trip; within a tenant, entries with waiting callers are
//    fetched before background renewals.
//  - After a fetch, the entry's timer is set to RenewAt() (jittered); the
//    scheduler's timer thread sleeps until the earliest one. A failed
//    renewal is retried with capped exponential backoff (full jitter,
//    Retry-After honoured; refused credentials wait `refused_backoff`) while
//    the still-usable token keeps being served. Once it is past its safety
//    margin callers get the last error (UNAVAILABLE or FAILED_PRECONDITION)
//    straight away, without a fetch per caller, while the retries go on in
//    the background — so the entry recovers by itself.
//  - An entry nobody asked for during `idle_timeout` (and nobody watches) is
//    dropped when it next falls due instead of being renewed.
//
// This file and token_cache.cc hold the entries, single-flight, the
// subscriptions and the tenant operations; token_cache_fetch.cc the path of
// one fetch (claim, ask Treezor, apply, publish); cache_entry.h an entry's
// state. Timers and threads are the scheduler's.
//
// Thread-safety: all public methods are thread-safe. Callbacks (waiters,
// subscribers) run without any cache lock held, on the caller's thread for a
// hit and on a worker thread otherwise; they must not block for long.
#ifndef TREEZOR_BROKER_SERVER_TOKEN_CACHE_H_
#define TREEZOR_BROKER_SERVER_TOKEN_CACHE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"
#include "server/cache_entry.h"
#include "server/cache_key.h"
#include "server/cached_token.h"
#include "server/renewal_scheduler.h"
#include "server/settings.h"
#include "server/token_fetcher.h"

namespace treezor::broker {

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
  using TokenPtr = internal::TokenPtr;
  using Callback = internal::TokenCallback;

  // What is not a setting (server/settings.h).
  struct Options {
    Clock* clock = SystemClock::Get();
    // Uniform samples in [0, 1] for jitter and backoff. Default: absl::BitGen.
    std::function<double()> random_unit;
  };

  struct GetOptions {
    // The token must be valid at least this long after now.
    absl::Duration min_ttl = absl::ZeroDuration();
    // Lowercase hex SHA-256 of a token Treezor refused. A hint, never an
    // eviction: if it is still the cached token, one replacement is fetched
    // and this caller waits for it, while everyone else keeps being served
    // the reported token until the replacement has actually been obtained.
    // Reports are rate-limited per entry (renewal.rejected_token_min_interval
    // between report-triggered fetches; none while backing off after a
    // failure): a report inside the window, or of an older token, gets the
    // current token without a fetch. If the replacement fetch fails, the
    // reporting caller gets that error (UNAVAILABLE / FAILED_PRECONDITION,
    // as for any failed fetch) rather than the token it just reported as
    // refused; the reported token stays cached for the others and is
    // renewed on the normal backoff.
    std::string rejected_token_sha256;
    // The caller identity the request is made for (the one that matched the
    // policy), for per-caller accounting; empty for the broker's own work.
    // A view (a cached GetToken copies no string): what it views must
    // outlive the TryGet / GetAsync call, which keeps a copy if it needs one.
    absl::string_view caller;
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
    // A queued fetch nobody wanted any more was dropped before reaching
    // Treezor.
    virtual void OnFetchDropped(const CacheKey& key) {}
  };

  // `fetcher` must outlive the cache. `max_concurrent_fetches` worker
  // threads (at least one): the bound on concurrent requests to Treezor.
  // Starts the threads.
  // `limits`: max_scope_sets_per_tenant / _per_caller (the rest is not the
  // cache's).
  TokenCache(TokenFetcher* fetcher, const RenewalSettings& renewal,
             int max_concurrent_fetches, Options options,
             const LimitsSettings& limits = {});
  // Stops the threads; waiters still pending get UNAVAILABLE.
  ~TokenCache();

  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // Answers `done` exactly once: inline for a hit, later otherwise. Errors:
  // UNAVAILABLE / FAILED_PRECONDITION / NOT_FOUND from the fetcher (prefixed
  // as such), OUT_OF_RANGE when even a fresh token cannot satisfy min_ttl.
  // A token Treezor issues for less than renewal.min_token_lifetime is a
  // failed fetch (UNAVAILABLE naming the lifetime and the setting, outcome
  // "short_lifetime", normal backoff), never served nor renewed at once.
  // RESOURCE_EXHAUSTED when the request would create an entry past
  // limits.max_scope_sets_per_tenant, or past limits.max_scope_sets_per_caller
  // entries created by `options.caller` and still alive (entries it merely
  // shares, and the broker's own, count for nobody); an entry dropped as
  // idle or removed with its tenant frees its slot.
  // Returns the waiter's id when `done` will be called later (for
  // CancelWaiter), 0 when it has already been called.
  uint64_t GetAsync(const CacheKey& key, const GetOptions& options,
                    Callback done) ABSL_LOCKS_EXCLUDED(entries_mu_);

  // The caller of waiter `waiter` of `key` went away (cancelled, deadline
  // exceeded): if it still waits, it is removed and its callback runs now,
  // with CANCELLED. No-op if it was already answered.
  void CancelWaiter(const CacheKey& key, uint64_t waiter)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // GetAsync's answer if there is one now (a hit, or an error it would answer
  // at once); nullopt when GetAsync would have to wait (nothing is started
  // then, and always for a request with rejected_token_sha256, which only
  // GetAsync makes). The hit path of GetToken: a call answered here needs no
  // reactor of its own.
  std::optional<absl::StatusOr<TokenPtr>> TryGet(const CacheKey& key,
                                                 const GetOptions& options);

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
  // Queued fetches dropped, since start, because nobody wanted them any more.
  int64_t fetches_dropped() const { return fetches_dropped_.load(); }

  // Set before traffic starts; not owned.
  void SetObserver(Observer* observer) { observer_ = observer; }

  // Wakes the scheduler to re-read the clock (FakeClock listeners call it).
  void Wake();

  // Answers pending waiters UNAVAILABLE (and any later caller), then stops
  // the threads (waiting for requests in flight); idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(entries_mu_);

  // GetAsync callers of `key` still waiting (0 without an entry): lets tests
  // see that a caller who went away left no waiter behind.
  size_t waiters(const CacheKey& key) const ABSL_LOCKS_EXCLUDED(entries_mu_);

 private:
  // GetAsync and TryGet: the answer if there is one now; otherwise nullopt
  // and, if `wait` is given, *wait enqueued as a waiter (its id in
  // *waiter_id) and a fetch started.
  std::optional<absl::StatusOr<TokenPtr>> AnswerOrWait(const CacheKey& key,
                                                       const GetOptions& options,
                                                       Callback* wait,
                                                       uint64_t* waiter_id);

  using Entry = internal::CacheEntry;
  using EntryPtr = std::shared_ptr<Entry>;

  // For the broker's own work (prefetch, subscriptions, admin refresh):
  // outside the caps.
  EntryPtr FindOrCreate(const CacheKey& key) ABSL_LOCKS_EXCLUDED(entries_mu_);
  // For a caller's GetAsync: a new entry must fit under the caps.
  absl::StatusOr<EntryPtr> FindOrCreateWithinLimits(const CacheKey& key,
                                                    absl::string_view caller)
      ABSL_LOCKS_EXCLUDED(entries_mu_);
  EntryPtr InsertEntryLocked(const CacheKey& key, absl::string_view creator)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entries_mu_);
  void EraseEntryLocked(absl::flat_hash_map<CacheKey, EntryPtr>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entries_mu_);
  EntryPtr Find(const CacheKey& key) const ABSL_LOCKS_EXCLUDED(entries_mu_);
  void RemoveEntry(const EntryPtr& entry) ABSL_LOCKS_EXCLUDED(entries_mu_);
  std::vector<EntryPtr> EntriesOf(const std::string& tenant) const
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // Queues one fetch for the entry unless one is queued or running (a
  // queued background fetch is promoted when `urgent`).
  void StartFetchLocked(const EntryPtr& entry, bool urgent)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  // Whether a report that `sha256_hex` was refused makes this caller wait
  // for a replacement (see GetOptions::rejected_token_sha256); records the
  // report-triggered fetch for the rate limit.
  bool ReportTriggersFetchLocked(Entry& entry, const std::string& sha256_hex,
                                 absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry.mu);
  // Whether a fetch for the entry is still worth doing now: someone waits
  // or watches, a Prefetch asked for it, or its token is in use.
  bool WantedLocked(const Entry& entry, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry.mu);
  // The entry's queued fetch is not wanted: marks it idle and counts it (the
  // caller has withdrawn it from the scheduler or is the worker that took
  // it), and makes sure a timer will drop the entry once idle.
  void DropFetchLocked(const EntryPtr& entry, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  // Sets the entry's one timer (replacing any earlier one).
  void ScheduleLocked(const EntryPtr& entry, absl::Time due)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  // The entry's timer: drop it if idle, else renew (or retry) it.
  void OnDue(const EntryPtr& entry) ABSL_LOCKS_EXCLUDED(entries_mu_);
  void FetchTenantNow(const std::string& tenant, bool only_failing)
      ABSL_LOCKS_EXCLUDED(entries_mu_);

  // --- The fetch path (token_cache_fetch.cc), on a worker thread.
  struct FetchOutcome;
  struct Publication;
  // One fetch for `entry`: claim it, ask Treezor, apply the answer to the
  // entry, then answer everyone it concerns.
  void RunFetch(const EntryPtr& entry);
  // Marks the queued fetch running and builds the request; false if the
  // queue item is stale, the entry gone, or the fetch no longer wanted (then
  // `*dropped` is set: it was dropped, see DropFetchLocked).
  bool BeginFetch(const EntryPtr& entry, FetchRequest* request, bool* dropped)
      ABSL_LOCKS_EXCLUDED(entry->mu);
  FetchOutcome CallFetcher(const FetchRequest& request);
  // A token whose lifetime (expires_at - obtained_at, as the fetcher
  // computed them) is below renewal.min_token_lifetime becomes an
  // UNAVAILABLE error with outcome "short_lifetime".
  void RefuseShortLifetime(const FetchRequest& request,
                           FetchResult& result) const;
  // Updates the entry with the outcome and collects who must hear of it.
  Publication ApplyOutcome(const EntryPtr& entry, const FetchRequest& request,
                           FetchOutcome& outcome)
      ABSL_LOCKS_EXCLUDED(entry->mu);
  void StoreTokenLocked(Entry& entry, const FetchRequest& request,
                        Token token, absl::Time now, Publication& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry.mu);
  void RecordFailureLocked(Entry& entry, const FetchResult& result,
                           absl::Time now, Publication& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry.mu);
  void Publish(const EntryPtr& entry, const FetchReport& report,
               Publication& publication);

  double Random() ABSL_LOCKS_EXCLUDED(random_mu_);

  TokenFetcher* const fetcher_;
  const RenewalSettings renewal_;
  const LimitsSettings limits_;
  const Options options_;
  Observer* observer_ = nullptr;

  mutable Mutex entries_mu_;
  absl::flat_hash_map<CacheKey, EntryPtr> entries_ ABSL_GUARDED_BY(entries_mu_);
  uint64_t next_entry_id_ ABSL_GUARDED_BY(entries_mu_) = 1;
  // Live entries by tenant and by creating caller (the caps' accounting).
  absl::flat_hash_map<std::string, int> entries_per_tenant_
      ABSL_GUARDED_BY(entries_mu_);
  absl::flat_hash_map<std::string, int> entries_per_caller_
      ABSL_GUARDED_BY(entries_mu_);

  Mutex random_mu_;
  std::function<double()> random_unit_ ABSL_GUARDED_BY(random_mu_);

  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> fetches_dropped_{0};
  // Set first thing in Shutdown(); read under an entry's lock, so a caller
  // either sees it or is among the waiters Shutdown() answers.
  std::atomic<bool> shutting_down_{false};
  // Last: its threads stop (in Shutdown, at the latest when it is
  // destroyed) before anything they use goes away.
  RenewalScheduler scheduler_;
};

const char* EntryStateName(EntrySnapshot::State state);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_TOKEN_CACHE_H_
