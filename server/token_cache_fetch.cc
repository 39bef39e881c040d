// The token cache's fetch path: one request to Treezor for one entry, on a
// scheduler worker, in four steps — claim the queued fetch (BeginFetch), ask
// the fetcher without any lock held (CallFetcher, which also refuses a token
// living less than renewal.min_token_lifetime), apply the answer to the
// entry (ApplyOutcome), then answer everyone it concerns (Publish).
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/token_digest.h"
#include "server/backoff.h"
#include "server/cache_errors.h"
#include "server/logging.h"
#include "server/quote.h"
#include "server/renewal_policy.h"
#include "server/token_cache.h"

namespace treezor::broker {

// What came back from Treezor, and when.
struct TokenCache::FetchOutcome {
  FetchResult result;
  FetchReport report;
  absl::Time finished;
};

// Who must hear of a fetch, collected under the entry's lock and answered
// after it is released.
struct TokenCache::Publication {
  absl::Time now;
  TokenPtr fresh;      // the new token, if one was obtained
  absl::Status error;  // otherwise, why not
  std::vector<internal::CacheWaiter> waiters;
  std::vector<Callback> refresh_waiters;
  std::vector<Callback> subscribers;  // only when `fresh` is set
};

void TokenCache::RunFetch(const EntryPtr& entry) {
  FetchRequest request;
  bool dropped = false;
  if (!BeginFetch(entry, &request, &dropped)) {
    if (dropped && observer_ != nullptr) observer_->OnFetchDropped(entry->key);
    return;
  }
  FetchOutcome outcome = CallFetcher(request);
  Publication publication = ApplyOutcome(entry, request, outcome);
  Publish(entry, outcome.report, publication);
}

bool TokenCache::BeginFetch(const EntryPtr& entry, FetchRequest* request,
                            bool* dropped) {
  MutexLock lock(&entry->mu);
  // A queue item made stale by a fetch that already ran, or a removed entry.
  if (entry->fetch_state != internal::FetchState::kQueued || entry->removed) {
    return false;
  }
  const absl::Time now = options_.clock->MonotonicNow();
  // The last check before Treezor: whoever wanted this fetch may have left
  // while it was queued.
  if (!WantedLocked(*entry, now)) {
    DropFetchLocked(entry, now);
    *dropped = true;
    return false;
  }
  entry->fetch_state = internal::FetchState::kRunning;
  entry->prefetch_requested = false;
  request->tenant = entry->key.tenant;
  request->scopes = entry->key.scopes;
  if (!entry->refresh_token.empty() &&
      now - entry->chain_started_at < renewal_.refresh_token_max_age) {
    request->refresh_token = entry->refresh_token;
  }
  return true;
}

TokenCache::FetchOutcome TokenCache::CallFetcher(const FetchRequest& request) {
  const absl::Time started = options_.clock->MonotonicNow();
  in_flight_.fetch_add(1);
  FetchResult result = fetcher_->Fetch(request);
  in_flight_.fetch_sub(1);
  // When the answer arrived, on the monotonic timeline: the token's life
  // is counted from here.
  const absl::Time finished = options_.clock->MonotonicNow();
  RefuseShortLifetime(request, result);
  FetchReport report{result.token.status(), result.outcome, result.grant_type,
                     finished - started};
  return {std::move(result), std::move(report), finished};
}

void TokenCache::RefuseShortLifetime(const FetchRequest& request,
                                     FetchResult& result) const {
  if (!result.token.ok()) return;
  const absl::Duration lifetime = result.token->lifetime();
  if (lifetime >= renewal_.min_token_lifetime) return;
  // A bad answer, not a token: it fails like any other (backoff, the
  // warning RecordFailureLocked logs) instead of being renewed at once.
  result.token = absl::UnavailableError(absl::StrCat(
      "tenant ", Quote(request.tenant), ": Treezor returned a token with a ",
      "usable lifetime of ", absl::FormatDuration(lifetime),
      ", below renewal.minTokenLifetime (",
      absl::FormatDuration(renewal_.min_token_lifetime), ")"));
  result.outcome = "short_lifetime";
  result.refresh_token_rejected = false;
}

TokenCache::Publication TokenCache::ApplyOutcome(const EntryPtr& entry,
                                                 const FetchRequest& request,
                                                 FetchOutcome& outcome) {
  FetchResult& result = outcome.result;
  Publication out;
  out.now = outcome.finished;
  MutexLock lock(&entry->mu);
  entry->fetch_state = internal::FetchState::kIdle;
  entry->queued_urgent = false;
  ++entry->fetch_count;
  if (entry->removed) {
    out.error = absl::NotFoundError("tenant removed from the configuration");
  } else if (!result.token.ok() && result.refresh_token_rejected) {
    // The refresh chain is dead: authenticate from scratch at once. Whoever
    // waits keeps waiting for that second request.
    LogInfo("refresh token refused; authenticating from scratch",
            {{"tenant", entry->key.tenant}});
    entry->refresh_token.clear();
    StartFetchLocked(entry, /*urgent=*/!entry->waiters.empty() ||
                                !entry->refresh_waiters.empty());
    return out;
  } else if (result.token.ok()) {
    StoreTokenLocked(*entry, request, *std::move(result.token), out.now, out);
    ScheduleLocked(entry, RenewAt(renewal_, out.fresh->SteadyTiming(),
                                  Random() * 2.0 - 1.0));
  } else {
    RecordFailureLocked(*entry, result, out.now, out);
    ScheduleLocked(entry, entry->retry_not_before);
  }
  out.waiters.swap(entry->waiters);
  out.refresh_waiters.swap(entry->refresh_waiters);
  if (out.fresh != nullptr) {
    for (const auto& [handle, callback] : entry->subscribers) {
      out.subscribers.push_back(callback);
    }
  }
  return out;
}

void TokenCache::StoreTokenLocked(Entry& entry, const FetchRequest& request,
                                  Token token, absl::Time now,
                                  Publication& out) {
  auto cached = std::make_shared<CachedToken>();
  cached->token = std::move(token);
  cached->version = ++entry.last_version;
  cached->sha256_hex = TokenSha256Hex(cached->token.access_token);
  cached->fingerprint = cached->sha256_hex.substr(0, 12);
  cached->steady_obtained_at = now;
  cached->steady_expires_at = now + cached->token.lifetime();
  cached->steady_usable_until = UsableUntil(renewal_, cached->SteadyTiming());
  if (cached->token.refresh_token.empty()) {
    entry.refresh_token.clear();
  } else {
    if (request.refresh_token.empty()) entry.chain_started_at = now;
    entry.refresh_token = cached->token.refresh_token;
  }
  cached->token.refresh_token.clear();  // never leaves the entry
  entry.token = cached;
  entry.last_error = absl::OkStatus();
  entry.consecutive_failures = 0;
  entry.retry_not_before = absl::InfinitePast();
  entry.last_renewal = now;
  out.fresh = std::move(cached);
  LogInfo("token obtained",
          {{"tenant", entry.key.tenant},
           {"scopes", entry.key.scopes.ToOAuthString()},
           {"token_fp", out.fresh->fingerprint},
           {"expires_at",
            absl::FormatTime(absl::RFC3339_sec, out.fresh->token.expires_at,
                             absl::UTCTimeZone())},
           {"version", out.fresh->version}});
}

void TokenCache::RecordFailureLocked(Entry& entry, const FetchResult& result,
                                     absl::Time now, Publication& out) {
  out.error = result.token.status();
  ++entry.consecutive_failures;
  entry.last_error = out.error;
  const absl::Duration delay =
      absl::IsFailedPrecondition(out.error)
          ? std::max(renewal_.refused_backoff,
                     result.retry_after.value_or(absl::ZeroDuration()))
          : BackoffDelay({renewal_.initial_backoff, renewal_.max_backoff},
                         entry.consecutive_failures, Random(),
                         result.retry_after);
  entry.retry_not_before = now + delay;
  const bool serving_cached =
      entry.token != nullptr &&
      now < entry.token->steady_usable_until;
  LogWarning("token fetch failed; will retry",
             {{"tenant", entry.key.tenant},
              {"scopes", entry.key.scopes.ToOAuthString()},
              {"error", out.error.ToString()},
              {"consecutive_failures", entry.consecutive_failures},
              {"retry_in", absl::FormatDuration(delay)},
              {"serving_cached", serving_cached ? "true" : "false"}});
}

void TokenCache::Publish(const EntryPtr& entry, const FetchReport& report,
                         Publication& publication) {
  // After the entry is settled, so an observer sees the outcome applied.
  if (observer_ != nullptr) observer_->OnFetchDone(entry->key, report);
  const TokenPtr& fresh = publication.fresh;
  const absl::Time now = publication.now;
  for (internal::CacheWaiter& waiter : publication.waiters) {
    if (fresh == nullptr) {
      waiter.done(CallerError(publication.error));
    } else if (fresh->steady_expires_at - now < waiter.min_ttl ||
               now >= fresh->steady_usable_until) {
      waiter.done(
          MinTtlOutOfRange(waiter.min_ttl, fresh->steady_expires_at - now));
    } else {
      waiter.done(fresh);
    }
  }
  for (Callback& done : publication.refresh_waiters) {
    if (fresh != nullptr) {
      done(fresh);
    } else {
      done(CallerError(publication.error));
    }
  }
  for (Callback& subscriber : publication.subscribers) subscriber(fresh);
}

}  // namespace treezor::broker
