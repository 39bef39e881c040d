#include "server/token_cache.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "server/cache_errors.h"
#include "server/logging.h"
#include "server/quote.h"
#include "server/renewal_policy.h"

namespace treezor::broker {

const char* EntryStateName(EntrySnapshot::State state) {
  switch (state) {
    case EntrySnapshot::State::kFresh: return "fresh";
    case EntrySnapshot::State::kRenewing: return "renewing";
    case EntrySnapshot::State::kFailing: return "failing";
    case EntrySnapshot::State::kExpired: return "expired";
    case EntrySnapshot::State::kEmpty: return "empty";
  }
  return "empty";
}

TokenCache::TokenCache(TokenFetcher* fetcher, const RenewalSettings& renewal,
                       int max_concurrent_fetches, Options options,
                       const LimitsSettings& limits)
    : fetcher_(fetcher),
      renewal_(renewal),
      limits_(limits),
      options_(std::move(options)),
      scheduler_(options_.clock, max_concurrent_fetches) {
  MutexLock lock(&random_mu_);
  random_unit_ = options_.random_unit;
  if (!random_unit_) {
    random_unit_ = [gen = std::make_shared<absl::BitGen>()] {
      return absl::Uniform<double>(absl::IntervalClosedClosed, *gen, 0.0, 1.0);
    };
  }
}

TokenCache::~TokenCache() { Shutdown(); }

double TokenCache::Random() {
  MutexLock lock(&random_mu_);
  return random_unit_();
}

TokenCache::EntryPtr TokenCache::Find(const CacheKey& key) const {
  MutexLock lock(&entries_mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

TokenCache::EntryPtr TokenCache::FindOrCreate(const CacheKey& key) {
  MutexLock lock(&entries_mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  return InsertEntryLocked(key, /*creator=*/"");
}

absl::StatusOr<TokenCache::EntryPtr> TokenCache::FindOrCreateWithinLimits(
    const CacheKey& key, absl::string_view caller) {
  MutexLock lock(&entries_mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  const auto tenant = entries_per_tenant_.find(key.tenant);
  if (tenant != entries_per_tenant_.end() &&
      tenant->second >= limits_.max_scope_sets_per_tenant) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "limits.maxScopeSetsPerTenant (", limits_.max_scope_sets_per_tenant,
        ") reached for tenant ", Quote(key.tenant)));
  }
  if (!caller.empty()) {
    const auto mine = entries_per_caller_.find(caller);
    if (mine != entries_per_caller_.end() &&
        mine->second >= limits_.max_scope_sets_per_caller) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "limits.maxScopeSetsPerCaller (", limits_.max_scope_sets_per_caller,
          ") reached for caller ", Quote(caller, 128)));
    }
  }
  return InsertEntryLocked(key, caller);
}

TokenCache::EntryPtr TokenCache::InsertEntryLocked(const CacheKey& key,
                                                   absl::string_view creator) {
  auto entry =
      std::make_shared<Entry>(key, next_entry_id_++, std::string(creator));
  entries_.emplace(key, entry);
  ++entries_per_tenant_[key.tenant];
  if (!creator.empty()) ++entries_per_caller_[creator];
  return entry;
}

void TokenCache::EraseEntryLocked(
    absl::flat_hash_map<CacheKey, EntryPtr>::iterator it) {
  const EntryPtr& entry = it->second;
  if (--entries_per_tenant_[entry->key.tenant] <= 0) {
    entries_per_tenant_.erase(entry->key.tenant);
  }
  if (!entry->creator.empty() && --entries_per_caller_[entry->creator] <= 0) {
    entries_per_caller_.erase(entry->creator);
  }
  entries_.erase(it);
}

void TokenCache::RemoveEntry(const EntryPtr& entry) {
  MutexLock lock(&entries_mu_);
  auto it = entries_.find(entry->key);
  if (it != entries_.end() && it->second == entry) EraseEntryLocked(it);
}

std::vector<TokenCache::EntryPtr> TokenCache::EntriesOf(
    const std::string& tenant) const {
  std::vector<EntryPtr> out;
  MutexLock lock(&entries_mu_);
  for (const auto& [key, entry] : entries_) {
    if (key.tenant == tenant) out.push_back(entry);
  }
  return out;
}

uint64_t TokenCache::GetAsync(const CacheKey& key, const GetOptions& options,
                              Callback done) {
  uint64_t waiter_id = 0;
  std::optional<absl::StatusOr<TokenPtr>> answer =
      AnswerOrWait(key, options, &done, &waiter_id);
  if (answer.has_value()) done(*std::move(answer));
  return waiter_id;
}

std::optional<absl::StatusOr<TokenCache::TokenPtr>> TokenCache::TryGet(
    const CacheKey& key, const GetOptions& options) {
  // A report records itself (the rate limit of report-triggered fetches):
  // only the GetAsync that may wait for the replacement makes it.
  if (!options.rejected_token_sha256.empty()) return std::nullopt;
  return AnswerOrWait(key, options, /*wait=*/nullptr, /*waiter_id=*/nullptr);
}

std::optional<absl::StatusOr<TokenCache::TokenPtr>> TokenCache::AnswerOrWait(
    const CacheKey& key, const GetOptions& options, Callback* wait,
    uint64_t* waiter_id) {
  EntryPtr entry;
  std::optional<absl::StatusOr<TokenPtr>> answer;
  bool joined = false;
  bool waiting = false;
  // An entry removed by RemoveTenant between lookup and lock is replaced by
  // a new one; the loop runs at most twice in practice.
  for (;;) {
    absl::StatusOr<EntryPtr> found = FindOrCreateWithinLimits(key, options.caller);
    if (!found.ok()) {
      answer = found.status();
      break;
    }
    entry = *std::move(found);
    MutexLock lock(&entry->mu);
    if (entry->removed) continue;
    if (shutting_down_.load()) {
      answer = absl::UnavailableError("the broker is shutting down");
      break;
    }
    const absl::Time now = options_.clock->MonotonicNow();
    entry->last_used = now;
    const bool wants_replacement =
        !options.rejected_token_sha256.empty() &&
        ReportTriggersFetchLocked(*entry, options.rejected_token_sha256, now);
    const CachedToken* token = entry->token.get();
    if (!wants_replacement && token != nullptr &&
        now < token->steady_usable_until &&
        token->steady_expires_at - now >= options.min_ttl) {
      if (entry->consecutive_failures > 0) ++entry->served_while_failing;
      answer = entry->token;
    } else if (token != nullptr && options.min_ttl > token->token.lifetime()) {
      answer = MinTtlOutOfRange(options.min_ttl, token->token.lifetime());
    } else if (entry->fetch_state == internal::FetchState::kIdle &&
               now < entry->retry_not_before) {
      answer = CallerError(entry->last_error);
    } else if (wait != nullptr) {
      waiting = true;
      joined = entry->fetch_state != internal::FetchState::kIdle;
      *waiter_id = entry->next_waiter++;
      entry->waiters.push_back({*waiter_id, options.min_ttl, std::move(*wait)});
      StartFetchLocked(entry, /*urgent=*/true);
    }
    break;
  }
  if (observer_ != nullptr) {
    if (answer.has_value() && answer->ok()) {
      observer_->OnHit();
    } else if (waiting) {
      observer_->OnMiss(joined);
    }
  }
  return answer;
}

bool TokenCache::ReportTriggersFetchLocked(Entry& entry,
                                           const std::string& sha256_hex,
                                           absl::Time now) {
  if (entry.token == nullptr || entry.token->sha256_hex != sha256_hex) {
    return false;  // an older token: the current one answers
  }
  // A fetch already queued or running replaces the token: join it.
  if (entry.fetch_state != internal::FetchState::kIdle) return true;
  // Backing off after a failure, or a report-triggered fetch too recent:
  // the reported token keeps being served, with no request to Treezor.
  if (now < entry.retry_not_before) return false;
  if (now - entry.last_report_fetch < renewal_.rejected_token_min_interval) {
    return false;
  }
  entry.last_report_fetch = now;
  LogInfo("cached token reported as rejected by Treezor; renewing",
          {{"tenant", entry.key.tenant},
           {"scopes", entry.key.scopes.ToOAuthString()},
           {"token_fp", entry.token->fingerprint}});
  return true;
}

void TokenCache::CancelWaiter(const CacheKey& key, uint64_t waiter) {
  if (waiter == 0) return;
  EntryPtr entry = Find(key);
  if (entry == nullptr) return;
  Callback done;
  bool dropped = false;
  {
    MutexLock lock(&entry->mu);
    auto it = std::find_if(
        entry->waiters.begin(), entry->waiters.end(),
        [waiter](const internal::CacheWaiter& w) { return w.id == waiter; });
    if (it == entry->waiters.end()) return;
    done = std::move(it->done);
    entry->waiters.erase(it);
    // The last one leaving a queued fetch nobody else wants withdraws it. If
    // a worker has already taken it, BeginFetch drops it instead.
    const absl::Time now = options_.clock->MonotonicNow();
    if (entry->fetch_state == internal::FetchState::kQueued &&
        !WantedLocked(*entry, now) && scheduler_.CancelWork(entry->id)) {
      DropFetchLocked(entry, now);
      dropped = true;
    }
  }
  done(absl::CancelledError("the caller went away"));
  if (dropped && observer_ != nullptr) observer_->OnFetchDropped(key);
}

bool TokenCache::WantedLocked(const Entry& entry, absl::Time now) const {
  if (!entry.waiters.empty() || !entry.refresh_waiters.empty() ||
      !entry.subscribers.empty() || entry.prefetch_requested) {
    return true;
  }
  return entry.token != nullptr && now - entry.last_used < renewal_.idle_timeout;
}

void TokenCache::DropFetchLocked(const EntryPtr& entry, absl::Time now) {
  entry->fetch_state = internal::FetchState::kIdle;
  entry->queued_urgent = false;
  fetches_dropped_.fetch_add(1);
  // No timer planned: one must come to drop the entry once idle, or it
  // would hold its slot under the caps for ever.
  if (entry->renew_at <= now || entry->renew_at == absl::InfiniteFuture()) {
    ScheduleLocked(entry, entry->last_used + renewal_.idle_timeout);
  }
  LogInfo("queued token fetch dropped: nobody wants it any more",
          {{"tenant", entry->key.tenant},
           {"scopes", entry->key.scopes.ToOAuthString()}});
}

absl::StatusOr<TokenCache::TokenPtr> TokenCache::Get(const CacheKey& key,
                                                     const GetOptions& options,
                                                     absl::Time deadline) {
  struct State {
    Mutex mu;
    CondVar cv;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<TokenPtr> result ABSL_GUARDED_BY(mu);
  };
  auto state = std::make_shared<State>();
  GetAsync(key, options, [state](absl::StatusOr<TokenPtr> result) {
    MutexLock lock(&state->mu);
    state->result = std::move(result);
    state->done = true;
    state->cv.SignalAll();
  });
  MutexLock lock(&state->mu);
  if (!state->cv.WaitUntil(&state->mu, deadline,
                           [&state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                               state->mu) { return state->done; })) {
    return absl::DeadlineExceededError("deadline exceeded waiting for token");
  }
  return state->result;
}

void TokenCache::Prefetch(const CacheKey& key) {
  EntryPtr entry = FindOrCreate(key);
  MutexLock lock(&entry->mu);
  entry->last_used = options_.clock->MonotonicNow();
  if (entry->token == nullptr) {
    entry->prefetch_requested = true;
    StartFetchLocked(entry, /*urgent=*/false);
  }
}

void TokenCache::RefreshAsync(const CacheKey& key, Callback done) {
  EntryPtr entry = FindOrCreate(key);
  {
    MutexLock lock(&entry->mu);
    if (!shutting_down_.load()) {
      entry->refresh_waiters.push_back(std::move(done));
      StartFetchLocked(entry, /*urgent=*/true);
      return;
    }
  }
  done(absl::UnavailableError("the broker is shutting down"));
}

uint64_t TokenCache::Subscribe(const CacheKey& key, uint64_t after_version,
                               Callback on_token) {
  EntryPtr entry = FindOrCreate(key);
  TokenPtr current;
  uint64_t handle;
  {
    MutexLock lock(&entry->mu);
    handle = entry->next_subscriber++;
    entry->subscribers.emplace(handle, on_token);
    entry->last_used = options_.clock->MonotonicNow();
    if (entry->token != nullptr && entry->token->version > after_version) {
      current = entry->token;
    } else if (entry->token == nullptr) {
      StartFetchLocked(entry, /*urgent=*/false);
    }
  }
  if (current != nullptr) on_token(current);
  return handle;
}

void TokenCache::Unsubscribe(const CacheKey& key, uint64_t handle) {
  EntryPtr entry = Find(key);
  if (entry == nullptr) return;
  MutexLock lock(&entry->mu);
  entry->subscribers.erase(handle);
  // The idle period starts when the last watcher leaves.
  entry->last_used = options_.clock->MonotonicNow();
}

void TokenCache::StartFetchLocked(const EntryPtr& entry, bool urgent) {
  if (entry->fetch_state == internal::FetchState::kRunning) return;
  if (entry->fetch_state == internal::FetchState::kQueued &&
      (entry->queued_urgent || !urgent)) {
    return;
  }
  // Either idle, or queued as background work and now someone waits: the
  // scheduler promotes the queued item.
  entry->fetch_state = internal::FetchState::kQueued;
  entry->queued_urgent = urgent;
  scheduler_.Submit(entry->id,
                    urgent ? RenewalScheduler::Priority::kUrgent
                           : RenewalScheduler::Priority::kBackground,
                    /*fairness_key=*/entry->key.tenant,
                    [this, entry] { RunFetch(entry); });
}

void TokenCache::ScheduleLocked(const EntryPtr& entry, absl::Time due) {
  entry->renew_at = due;
  scheduler_.ScheduleAt(entry->id, due,
                        [this, weak = std::weak_ptr<Entry>(entry)] {
                          if (EntryPtr e = weak.lock()) OnDue(e);
                        });
}

void TokenCache::Wake() { scheduler_.Wake(); }

void TokenCache::OnDue(const EntryPtr& entry) {
  bool drop = false;
  {
    MutexLock lock(&entry->mu);
    if (entry->removed) return;
    const absl::Time now = options_.clock->MonotonicNow();
    // A timer replaced after it fired (a fetch set a later one meanwhile).
    if (entry->renew_at > now) return;
    const bool idle = entry->waiters.empty() && entry->subscribers.empty() &&
                      entry->refresh_waiters.empty() &&
                      now - entry->last_used >= renewal_.idle_timeout;
    if (idle) {
      entry->removed = true;
      drop = true;
    } else if (WantedLocked(*entry, now)) {
      StartFetchLocked(entry, /*urgent=*/false);
    } else {
      // Never produced a token and nobody waits: no background retry (the
      // next caller starts again after the backoff); check again once it
      // may have become idle.
      ScheduleLocked(entry, entry->last_used + renewal_.idle_timeout);
    }
  }
  if (drop) {
    LogInfo("dropping idle token entry",
            {{"tenant", entry->key.tenant},
             {"scopes", entry->key.scopes.ToOAuthString()}});
    RemoveEntry(entry);
    if (observer_ != nullptr) observer_->OnEntryDropped(entry->key);
  }
}

void TokenCache::RemoveTenant(const std::string& tenant) {
  std::vector<EntryPtr> removed;
  {
    MutexLock lock(&entries_mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->first.tenant == tenant) {
        removed.push_back(it->second);
        EraseEntryLocked(it++);
      } else {
        ++it;
      }
    }
  }
  const absl::Status gone = absl::NotFoundError(
      absl::StrCat("tenant ", tenant, " removed from the configuration"));
  for (const auto& entry : removed) {
    std::vector<Callback> to_notify;
    {
      MutexLock lock(&entry->mu);
      entry->removed = true;
      entry->token = nullptr;
      scheduler_.CancelTimer(entry->id);
      for (auto& w : entry->waiters) to_notify.push_back(std::move(w.done));
      for (Callback& c : entry->refresh_waiters) {
        to_notify.push_back(std::move(c));
      }
      for (auto& [handle, c] : entry->subscribers) to_notify.push_back(c);
      entry->waiters.clear();
      entry->refresh_waiters.clear();
      entry->subscribers.clear();
    }
    for (Callback& c : to_notify) c(gone);
  }
}

void TokenCache::RetryTenantNow(const std::string& tenant) {
  FetchTenantNow(tenant, /*only_failing=*/true);
}

void TokenCache::RenewTenantNow(const std::string& tenant) {
  FetchTenantNow(tenant, /*only_failing=*/false);
}

void TokenCache::FetchTenantNow(const std::string& tenant, bool only_failing) {
  for (const EntryPtr& entry : EntriesOf(tenant)) {
    MutexLock lock(&entry->mu);
    if (only_failing && entry->consecutive_failures == 0) continue;
    entry->retry_not_before = absl::InfinitePast();
    // Nobody wants it (no token in use, nobody waiting): the next caller
    // fetches at once, without the backoff.
    if (!WantedLocked(*entry, options_.clock->MonotonicNow())) continue;
    StartFetchLocked(entry, /*urgent=*/false);
  }
}

std::vector<EntrySnapshot> TokenCache::Snapshot() const {
  std::vector<EntryPtr> entries;
  {
    MutexLock lock(&entries_mu_);
    entries.reserve(entries_.size());
    for (const auto& [key, entry] : entries_) entries.push_back(entry);
  }
  // Entries keep monotonic times; the snapshot speaks wall-clock time.
  const absl::Time now = options_.clock->MonotonicNow();
  const absl::Time wall_now = options_.clock->Now();
  const auto wall = [&](absl::Time t) { return wall_now + (t - now); };
  std::vector<EntrySnapshot> out;
  out.reserve(entries.size());
  for (const auto& entry : entries) {
    MutexLock lock(&entry->mu);
    EntrySnapshot s;
    s.key = entry->key;
    const absl::Time usable_until =
        entry->token == nullptr
            ? absl::InfinitePast()
            : entry->token->steady_usable_until;
    const bool usable = now < usable_until;
    if (entry->token != nullptr) {
      s.token_fingerprint = entry->token->fingerprint;
      s.expires_at = entry->token->token.expires_at;
      s.usable_until = wall(usable_until);
    }
    if (!usable) {
      s.state = entry->consecutive_failures > 0 || entry->token != nullptr
                    ? EntrySnapshot::State::kExpired
                    : EntrySnapshot::State::kEmpty;
    } else if (entry->consecutive_failures > 0) {
      s.state = EntrySnapshot::State::kFailing;
    } else if (entry->fetch_state != internal::FetchState::kIdle) {
      s.state = EntrySnapshot::State::kRenewing;
    } else {
      s.state = EntrySnapshot::State::kFresh;
    }
    s.last_renewal = wall(entry->last_renewal);
    s.renew_at = wall(entry->renew_at);
    s.last_used = wall(entry->last_used);
    s.last_error = entry->last_error;
    s.consecutive_failures = entry->consecutive_failures;
    s.fetch_count = entry->fetch_count;
    s.served_while_failing = entry->served_while_failing;
    s.subscribers = static_cast<int>(entry->subscribers.size());
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const EntrySnapshot& a, const EntrySnapshot& b) {
              return a.key < b.key;
            });
  return out;
}

void TokenCache::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  // Answer everyone waiting first: a worker stuck in a slow request must not
  // hold callers (or the server's drain) until its timeout.
  std::vector<EntryPtr> entries;
  {
    MutexLock lock(&entries_mu_);
    for (const auto& [key, entry] : entries_) entries.push_back(entry);
  }
  const absl::Status stopping =
      absl::UnavailableError("the broker is shutting down");
  for (const auto& entry : entries) {
    std::vector<Callback> to_notify;
    {
      MutexLock lock(&entry->mu);
      for (auto& w : entry->waiters) to_notify.push_back(std::move(w.done));
      for (Callback& c : entry->refresh_waiters) {
        to_notify.push_back(std::move(c));
      }
      entry->waiters.clear();
      entry->refresh_waiters.clear();
    }
    for (Callback& c : to_notify) c(stopping);
  }
  scheduler_.Shutdown();
}

size_t TokenCache::waiters(const CacheKey& key) const {
  std::shared_ptr<Entry> entry = Find(key);
  if (entry == nullptr) return 0;
  MutexLock lock(&entry->mu);
  return entry->waiters.size();
}

}  // namespace treezor::broker
