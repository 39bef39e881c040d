#include "server/token_cache.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/token_digest.h"
#include "server/logging.h"

namespace treezor::broker {
namespace {

// What a caller sees when no usable token is cached and the last attempt
// failed. FAILED_PRECONDITION (refused credentials) and NOT_FOUND pass
// through; everything else is UNAVAILABLE.
absl::Status CallerError(const absl::Status& fetch_error) {
  if (absl::IsFailedPrecondition(fetch_error) || absl::IsNotFound(fetch_error)) {
    return fetch_error;
  }
  return absl::UnavailableError(
      absl::StrCat("no valid token cached and Treezor could not be reached: ",
                   fetch_error.message()));
}

absl::Status OutOfRange(absl::Duration min_ttl, absl::Duration lifetime) {
  return absl::OutOfRangeError(absl::StrCat(
      "min_ttl ", absl::FormatDuration(min_ttl),
      " exceeds what a fresh token offers (", absl::FormatDuration(lifetime),
      ")"));
}

}  // namespace

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
                       int max_concurrent_fetches, Options options)
    : fetcher_(fetcher), renewal_(renewal), options_(std::move(options)) {
  {
    MutexLock lock(&random_mu_);
    random_unit_ = options_.random_unit;
    if (!random_unit_) {
      random_unit_ = [gen = std::make_shared<absl::BitGen>()] {
        return absl::Uniform<double>(absl::IntervalClosedClosed, *gen, 0.0,
                                     1.0);
      };
    }
  }
  const int workers = std::max(1, max_concurrent_fetches);
  threads_.reserve(workers + 1);
  threads_.emplace_back([this] { SchedulerLoop(); });
  for (int i = 0; i < workers; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

TokenCache::~TokenCache() { Shutdown(); }

double TokenCache::Random() {
  MutexLock lock(&random_mu_);
  return random_unit_();
}

BackoffSettings TokenCache::backoff_settings() const {
  return {renewal_.initial_backoff, renewal_.max_backoff};
}

std::shared_ptr<TokenCache::Entry> TokenCache::Find(const CacheKey& key) const {
  MutexLock lock(&entries_mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

std::shared_ptr<TokenCache::Entry> TokenCache::FindOrCreate(
    const CacheKey& key) {
  MutexLock lock(&entries_mu_);
  auto [it, inserted] = entries_.try_emplace(key);
  if (inserted) it->second = std::make_shared<Entry>(key, next_entry_id_++);
  return it->second;
}

uint64_t TokenCache::GetAsync(const CacheKey& key, const GetOptions& options,
                              Callback done) {
  uint64_t waiter_id = 0;
  std::shared_ptr<Entry> entry;
  absl::StatusOr<TokenPtr> answer = absl::UnknownError("unset");
  bool answered = false;
  bool joined = false;
  // An entry removed by RemoveTenant between lookup and lock is replaced by
  // a new one; the loop runs at most twice in practice.
  for (;;) {
    entry = FindOrCreate(key);
    MutexLock lock(&entry->mu);
    if (entry->removed) continue;
    if (shutting_down_.load()) {
      answer = absl::UnavailableError("the broker is shutting down");
      answered = true;
      break;
    }
    const absl::Time now = options_.clock->Now();
    entry->last_used = now;
    if (!options.rejected_token_sha256.empty() && entry->token != nullptr &&
        entry->token->sha256_hex == options.rejected_token_sha256) {
      LogInfo("cached token reported as rejected by Treezor; renewing",
              {{"tenant", key.tenant},
               {"scopes", key.scopes.ToOAuthString()},
               {"token_fp", entry->token->fingerprint}});
      entry->token = nullptr;
    }
    const CachedToken* token = entry->token.get();
    if (token != nullptr && now < UsableUntil(renewal_, token->token) &&
        token->token.expires_at - now >= options.min_ttl) {
      if (entry->consecutive_failures > 0) ++entry->served_while_failing;
      answer = entry->token;
      answered = true;
    } else if (token != nullptr && options.min_ttl > token->token.lifetime()) {
      answer = OutOfRange(options.min_ttl, token->token.lifetime());
      answered = true;
    } else if (entry->fetch_state == FetchState::kIdle &&
               now < entry->retry_not_before) {
      answer = CallerError(entry->last_error);
      answered = true;
    } else {
      joined = entry->fetch_state != FetchState::kIdle;
      waiter_id = entry->next_waiter++;
      entry->waiters.push_back({waiter_id, options.min_ttl, std::move(done)});
      StartFetchLocked(entry, /*urgent=*/true);
    }
    break;
  }
  if (observer_ != nullptr) {
    if (answered && answer.ok()) {
      observer_->OnHit();
    } else if (!answered) {
      observer_->OnMiss(joined);
    }
  }
  if (answered) done(std::move(answer));
  return waiter_id;
}

void TokenCache::CancelWaiter(const CacheKey& key, uint64_t waiter) {
  if (waiter == 0) return;
  std::shared_ptr<Entry> entry = Find(key);
  if (entry == nullptr) return;
  Callback done;
  {
    MutexLock lock(&entry->mu);
    auto it = std::find_if(entry->waiters.begin(), entry->waiters.end(),
                           [waiter](const Waiter& w) { return w.id == waiter; });
    if (it == entry->waiters.end()) return;
    done = std::move(it->done);
    entry->waiters.erase(it);
  }
  done(absl::CancelledError("the caller went away"));
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
  std::shared_ptr<Entry> entry = FindOrCreate(key);
  MutexLock lock(&entry->mu);
  entry->last_used = options_.clock->Now();
  if (entry->token == nullptr) StartFetchLocked(entry, /*urgent=*/false);
}

void TokenCache::RefreshAsync(const CacheKey& key, Callback done) {
  std::shared_ptr<Entry> entry = FindOrCreate(key);
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
  std::shared_ptr<Entry> entry = FindOrCreate(key);
  TokenPtr current;
  uint64_t handle;
  {
    MutexLock lock(&entry->mu);
    handle = entry->next_subscriber++;
    entry->subscribers.emplace(handle, on_token);
    entry->last_used = options_.clock->Now();
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
  std::shared_ptr<Entry> entry = Find(key);
  if (entry == nullptr) return;
  MutexLock lock(&entry->mu);
  entry->subscribers.erase(handle);
  // The idle period starts when the last watcher leaves.
  entry->last_used = options_.clock->Now();
}

void TokenCache::StartFetchLocked(const std::shared_ptr<Entry>& entry,
                                  bool urgent) {
  if (entry->fetch_state == FetchState::kRunning) return;
  if (entry->fetch_state == FetchState::kQueued &&
      (entry->queued_urgent || !urgent)) {
    return;
  }
  // Either idle, or queued as background work and now someone waits: queue
  // (again) as urgent; the stale background item is skipped by the worker.
  entry->fetch_state = FetchState::kQueued;
  entry->queued_urgent = urgent;
  MutexLock lock(&sched_mu_);
  if (stopping_) return;
  (urgent ? urgent_work_ : background_work_).push_back(entry);
  work_cv_.Signal();
}

void TokenCache::ScheduleLocked(const std::shared_ptr<Entry>& entry,
                                absl::Time due) {
  entry->renew_at = due;
  MutexLock lock(&sched_mu_);
  auto it = scheduled_.find(entry->id);
  if (it != scheduled_.end()) {
    due_.erase({it->second.due, entry->id});
    scheduled_.erase(it);
  }
  const bool earliest = due_.empty() || due < due_.begin()->first;
  due_.insert({due, entry->id});
  scheduled_.emplace(entry->id, Scheduled{entry, due});
  if (earliest) sched_cv_.Signal();
}

void TokenCache::Wake() {
  MutexLock lock(&sched_mu_);
  sched_cv_.Signal();
}

void TokenCache::SchedulerLoop() {
  sched_mu_.Lock();
  while (!stopping_) {
    const absl::Time now = options_.clock->Now();
    std::vector<std::shared_ptr<Entry>> due_entries;
    while (!due_.empty() && due_.begin()->first <= now) {
      const uint64_t id = due_.begin()->second;
      due_.erase(due_.begin());
      auto it = scheduled_.find(id);
      if (it != scheduled_.end()) {
        if (auto entry = it->second.entry.lock()) {
          due_entries.push_back(std::move(entry));
        }
        scheduled_.erase(it);
      }
    }
    if (!due_entries.empty()) {
      sched_mu_.Unlock();
      for (const auto& entry : due_entries) OnDue(entry);
      sched_mu_.Lock();
      continue;
    }
    const absl::Duration wait =
        due_.empty() ? absl::Hours(1) : due_.begin()->first - now;
    sched_cv_.WaitFor(&sched_mu_, std::max(wait, absl::Milliseconds(1)));
  }
  sched_mu_.Unlock();
}

void TokenCache::OnDue(const std::shared_ptr<Entry>& entry) {
  bool drop = false;
  {
    MutexLock lock(&entry->mu);
    if (entry->removed) return;
    const absl::Time now = options_.clock->Now();
    const bool idle = entry->waiters.empty() && entry->subscribers.empty() &&
                      entry->refresh_waiters.empty() &&
                      now - entry->last_used >= renewal_.idle_timeout;
    if (idle) {
      entry->removed = true;
      drop = true;
    } else {
      StartFetchLocked(entry, /*urgent=*/false);
    }
  }
  if (drop) {
    LogInfo("dropping idle token entry",
            {{"tenant", entry->key.tenant}, {"scopes", entry->key.scopes.ToOAuthString()}});
    RemoveEntry(entry);
    if (observer_ != nullptr) observer_->OnEntryDropped(entry->key);
  }
}

void TokenCache::RemoveEntry(const std::shared_ptr<Entry>& entry) {
  MutexLock lock(&entries_mu_);
  auto it = entries_.find(entry->key);
  if (it != entries_.end() && it->second == entry) entries_.erase(it);
}

void TokenCache::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Entry> entry;
    {
      MutexLock lock(&sched_mu_);
      while (!stopping_ && urgent_work_.empty() && background_work_.empty()) {
        work_cv_.Wait(&sched_mu_);
      }
      if (stopping_) return;
      auto& queue = urgent_work_.empty() ? background_work_ : urgent_work_;
      entry = std::move(queue.front());
      queue.pop_front();
    }
    RunFetch(entry);
  }
}

void TokenCache::RunFetch(const std::shared_ptr<Entry>& entry) {
  FetchRequest request{entry->key.tenant, entry->key.scopes, ""};
  {
    MutexLock lock(&entry->mu);
    // A duplicate queue item (promoted to urgent) or a removed entry.
    if (entry->fetch_state != FetchState::kQueued || entry->removed) return;
    entry->fetch_state = FetchState::kRunning;
    const absl::Time now = options_.clock->Now();
    if (!entry->refresh_token.empty() &&
        now - entry->chain_started_at < renewal_.refresh_token_max_age) {
      request.refresh_token = entry->refresh_token;
    }
  }

  const absl::Time started = options_.clock->Now();
  in_flight_.fetch_add(1);
  FetchResult result = fetcher_->Fetch(request);
  in_flight_.fetch_sub(1);
  const absl::Time now = options_.clock->Now();
  FetchReport report{result.token.status(), std::move(result.outcome),
                     std::move(result.grant_type), now - started};

  std::vector<Waiter> waiters;
  std::vector<Callback> refresh_waiters;
  std::vector<Callback> subscribers;
  TokenPtr fresh;
  absl::Status error;
  bool waiters_stay = false;
  {
    MutexLock lock(&entry->mu);
    entry->fetch_state = FetchState::kIdle;
    entry->queued_urgent = false;
    ++entry->fetch_count;
    if (entry->removed) {
      error = absl::NotFoundError("tenant removed from the configuration");
    } else if (!result.token.ok() && result.refresh_token_rejected) {
      // The refresh chain is dead: authenticate from scratch at once.
      LogInfo("refresh token refused; authenticating from scratch",
              {{"tenant", entry->key.tenant}});
      entry->refresh_token.clear();
      StartFetchLocked(entry, /*urgent=*/!entry->waiters.empty() ||
                                  !entry->refresh_waiters.empty());
      waiters_stay = true;
    } else if (result.token.ok()) {
      auto cached = std::make_shared<CachedToken>();
      cached->token = *std::move(result.token);
      cached->version = ++entry->last_version;
      cached->sha256_hex = TokenSha256Hex(cached->token.access_token);
      cached->fingerprint = cached->sha256_hex.substr(0, 12);
      if (cached->token.refresh_token.empty()) {
        entry->refresh_token.clear();
      } else {
        if (request.refresh_token.empty()) entry->chain_started_at = now;
        entry->refresh_token = cached->token.refresh_token;
      }
      cached->token.refresh_token.clear();  // never leaves the entry
      fresh = cached;
      entry->token = cached;
      entry->last_error = absl::OkStatus();
      entry->consecutive_failures = 0;
      entry->retry_not_before = absl::InfinitePast();
      entry->last_renewal = now;
      ScheduleLocked(entry, RenewAt(renewal_, cached->token,
                                    Random() * 2.0 - 1.0));
      LogInfo("token obtained",
              {{"tenant", entry->key.tenant},
               {"scopes", entry->key.scopes.ToOAuthString()},
               {"token_fp", cached->fingerprint},
               {"expires_at", absl::FormatTime(absl::RFC3339_sec, cached->token.expires_at,
                                             absl::UTCTimeZone())},
               {"version", cached->version}});
    } else {
      error = result.token.status();
      ++entry->consecutive_failures;
      entry->last_error = error;
      const absl::Duration delay =
          absl::IsFailedPrecondition(error)
              ? std::max(renewal_.refused_backoff,
                         result.retry_after.value_or(absl::ZeroDuration()))
              : BackoffDelay(backoff_settings(), entry->consecutive_failures,
                             Random(), result.retry_after);
      entry->retry_not_before = now + delay;
      ScheduleLocked(entry, entry->retry_not_before);
      LogWarning("token fetch failed; will retry",
                 {{"tenant", entry->key.tenant},
                  {"scopes", entry->key.scopes.ToOAuthString()},
                  {"error", error.ToString()},
                  {"consecutive_failures", entry->consecutive_failures},
                  {"retry_in", absl::FormatDuration(delay)},
                  {"serving_cached",
                   entry->token != nullptr &&
                           now < UsableUntil(renewal_,
                                             entry->token->token)
                       ? "true"
                       : "false"}});
    }
    if (!waiters_stay) {
      waiters.swap(entry->waiters);
      refresh_waiters.swap(entry->refresh_waiters);
    }
    if (fresh != nullptr) {
      for (const auto& [handle, callback] : entry->subscribers) {
        subscribers.push_back(callback);
      }
    }
  }

  // After the entry is settled, so an observer sees the outcome applied.
  if (observer_ != nullptr) {
    observer_->OnFetchDone(entry->key, report);
  }
  for (Waiter& waiter : waiters) {
    if (fresh == nullptr) {
      waiter.done(CallerError(error));
    } else if (fresh->token.expires_at - now < waiter.min_ttl ||
               now >= UsableUntil(renewal_, fresh->token)) {
      waiter.done(OutOfRange(waiter.min_ttl, fresh->token.expires_at - now));
    } else {
      waiter.done(fresh);
    }
  }
  for (Callback& done : refresh_waiters) {
    if (fresh != nullptr) {
      done(fresh);
    } else {
      done(CallerError(error));
    }
  }
  for (Callback& subscriber : subscribers) subscriber(fresh);
}

void TokenCache::RemoveTenant(const std::string& tenant) {
  std::vector<std::shared_ptr<Entry>> removed;
  {
    MutexLock lock(&entries_mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->first.tenant == tenant) {
        removed.push_back(it->second);
        entries_.erase(it++);
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
      for (Waiter& w : entry->waiters) to_notify.push_back(std::move(w.done));
      for (Callback& c : entry->refresh_waiters) to_notify.push_back(std::move(c));
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
  std::vector<std::shared_ptr<Entry>> entries;
  {
    MutexLock lock(&entries_mu_);
    for (const auto& [key, entry] : entries_) {
      if (key.tenant == tenant) entries.push_back(entry);
    }
  }
  for (const auto& entry : entries) {
    MutexLock lock(&entry->mu);
    if (only_failing && entry->consecutive_failures == 0) continue;
    entry->retry_not_before = absl::InfinitePast();
    StartFetchLocked(entry, /*urgent=*/false);
  }
}

std::vector<EntrySnapshot> TokenCache::Snapshot() const {
  std::vector<std::shared_ptr<Entry>> entries;
  {
    MutexLock lock(&entries_mu_);
    entries.reserve(entries_.size());
    for (const auto& [key, entry] : entries_) entries.push_back(entry);
  }
  const absl::Time now = options_.clock->Now();
  std::vector<EntrySnapshot> out;
  out.reserve(entries.size());
  for (const auto& entry : entries) {
    MutexLock lock(&entry->mu);
    EntrySnapshot s;
    s.key = entry->key;
    const bool usable = entry->token != nullptr &&
                        now < UsableUntil(renewal_, entry->token->token);
    if (entry->token != nullptr) {
      s.token_fingerprint = entry->token->fingerprint;
      s.expires_at = entry->token->token.expires_at;
      s.usable_until = UsableUntil(renewal_, entry->token->token);
    }
    if (!usable) {
      s.state = entry->consecutive_failures > 0 || entry->token != nullptr
                    ? EntrySnapshot::State::kExpired
                    : EntrySnapshot::State::kEmpty;
    } else if (entry->consecutive_failures > 0) {
      s.state = EntrySnapshot::State::kFailing;
    } else if (entry->fetch_state != FetchState::kIdle) {
      s.state = EntrySnapshot::State::kRenewing;
    } else {
      s.state = EntrySnapshot::State::kFresh;
    }
    s.last_renewal = entry->last_renewal;
    s.renew_at = entry->renew_at;
    s.last_used = entry->last_used;
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
  std::vector<std::shared_ptr<Entry>> entries;
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
      for (Waiter& w : entry->waiters) to_notify.push_back(std::move(w.done));
      for (Callback& c : entry->refresh_waiters) to_notify.push_back(std::move(c));
      entry->waiters.clear();
      entry->refresh_waiters.clear();
    }
    for (Callback& c : to_notify) c(stopping);
  }
  {
    MutexLock lock(&sched_mu_);
    stopping_ = true;
    urgent_work_.clear();
    background_work_.clear();
    sched_cv_.SignalAll();
    work_cv_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

size_t TokenCache::waiters(const CacheKey& key) const {
  std::shared_ptr<Entry> entry = Find(key);
  if (entry == nullptr) return 0;
  MutexLock lock(&entry->mu);
  return entry->waiters.size();
}

}  // namespace treezor::broker
