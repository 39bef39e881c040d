// One entry of the token cache — a (tenant, scope set) — and everything the
// cache knows about it: the current token, the fetch in progress, who waits
// for it or watches it, the failure and backoff state, the refresh chain.
// Internal to TokenCache (server/token_cache.h), which owns the rules; this
// header only holds the state so the cache's files share one definition.
//
// Every absl::Time here is on the clock's monotonic timeline
// (Clock::MonotonicNow), never the wall clock.
//
// Thread-safety: `key` and `id` are immutable; everything else is guarded by
// `mu`. Lock order: an entry's `mu`, then the cache's scheduler (never two
// entries at once, never the cache's entry map while holding `mu`).
#ifndef TREEZOR_BROKER_SERVER_CACHE_ENTRY_H_
#define TREEZOR_BROKER_SERVER_CACHE_ENTRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "server/cache_key.h"
#include "server/cached_token.h"

namespace treezor::broker::internal {

using TokenPtr = std::shared_ptr<const CachedToken>;
using TokenCallback = std::function<void(absl::StatusOr<TokenPtr>)>;

struct CacheWaiter {
  uint64_t id;
  absl::Duration min_ttl;
  TokenCallback done;
};

enum class FetchState { kIdle, kQueued, kRunning };

struct CacheEntry {
  CacheEntry(CacheKey k, uint64_t i, std::string c)
      : key(std::move(k)), id(i), creator(std::move(c)) {}

  const CacheKey key;
  const uint64_t id;  // names the entry's timer and work in the scheduler
  // The caller identity whose request created the entry (its slot under
  // limits.max_scope_sets_per_caller); empty for the broker's own work.
  const std::string creator;
  Mutex mu;
  TokenPtr token ABSL_GUARDED_BY(mu);
  uint64_t last_version ABSL_GUARDED_BY(mu) = 0;
  FetchState fetch_state ABSL_GUARDED_BY(mu) = FetchState::kIdle;
  bool queued_urgent ABSL_GUARDED_BY(mu) = false;
  // The broker asked for the entry's first token (Prefetch): the queued
  // fetch is wanted although nobody waits for it. Cleared when it starts.
  bool prefetch_requested ABSL_GUARDED_BY(mu) = false;
  bool removed ABSL_GUARDED_BY(mu) = false;
  absl::Status last_error ABSL_GUARDED_BY(mu);
  int consecutive_failures ABSL_GUARDED_BY(mu) = 0;
  // Backoff gate: before this, callers get last_error instead of a fetch.
  absl::Time retry_not_before ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  // The next renewal or retry; InfiniteFuture when none is planned.
  absl::Time renew_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  absl::Time last_renewal ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::Time last_used ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  // The last fetch a rejected-token report triggered (rate limit).
  absl::Time last_report_fetch ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  // Password grant refresh chain.
  std::string refresh_token ABSL_GUARDED_BY(mu);
  absl::Time chain_started_at ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  std::vector<CacheWaiter> waiters ABSL_GUARDED_BY(mu);
  // Forced refreshes (admin): answered by the next fetch, whatever it is.
  std::vector<TokenCallback> refresh_waiters ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<uint64_t, TokenCallback> subscribers ABSL_GUARDED_BY(mu);
  uint64_t next_subscriber ABSL_GUARDED_BY(mu) = 1;
  uint64_t next_waiter ABSL_GUARDED_BY(mu) = 1;
  int64_t fetch_count ABSL_GUARDED_BY(mu) = 0;
  int64_t served_while_failing ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace treezor::broker::internal

#endif  // TREEZOR_BROKER_SERVER_CACHE_ENTRY_H_
