#include "server/token_cache.h"

#include <atomic>
#include <thread>

#include "common/token_digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_token_fetcher.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;
using testing::FakeClock;
using testing::FakeTokenFetcher;
using testing::StatusIs;
using TokenPtr = TokenCache::TokenPtr;

// Counts completed fetches; a test waits for one instead of sleeping. The
// cache calls OnFetchDone after the entry is updated.
class FetchWaiter : public TokenCache::Observer {
 public:
  void OnFetchDone(const CacheKey&,
                   const TokenCache::FetchReport& report) override {
    MutexLock lock(&mu_);
    ++done_;
    if (report.status.ok()) ++succeeded_;
    outcomes_.push_back(report.outcome);
    cv_.SignalAll();
  }
  bool WaitForSuccesses(int n, absl::Duration timeout = absl::Seconds(10)) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return succeeded_ >= n;
                         });
  }
  bool WaitForFetches(int n, absl::Duration timeout = absl::Seconds(10)) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return done_ >= n;
                         });
  }
  int done() {
    MutexLock lock(&mu_);
    return done_;
  }
  std::vector<std::string> outcomes() {
    MutexLock lock(&mu_);
    return outcomes_;
  }
  void OnEntryDropped(const CacheKey&) override {
    MutexLock lock(&mu_);
    ++dropped_;
    cv_.SignalAll();
  }
  void OnFetchDropped(const CacheKey&) override {
    MutexLock lock(&mu_);
    ++fetches_dropped_;
    cv_.SignalAll();
  }
  bool WaitForDroppedFetches(int n,
                             absl::Duration timeout = absl::Seconds(10)) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return fetches_dropped_ >= n;
                         });
  }
  bool WaitForDrops(int n, absl::Duration timeout = absl::Seconds(10)) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return dropped_ >= n;
                         });
  }

 private:
  Mutex mu_;
  CondVar cv_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  int succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  int dropped_ ABSL_GUARDED_BY(mu_) = 0;
  int fetches_dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> outcomes_ ABSL_GUARDED_BY(mu_);
};

// Collects what a subscriber receives.
class TokenRecorder {
 public:
  TokenCache::Callback Callback() {
    return [this](absl::StatusOr<TokenPtr> t) {
      MutexLock lock(&mu_);
      received_.push_back(std::move(t));
      cv_.SignalAll();
    };
  }
  bool WaitForCount(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout,
                         [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                           return received_.size() >= n;
                         });
  }
  std::vector<absl::StatusOr<TokenPtr>> received() {
    MutexLock lock(&mu_);
    return received_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::vector<absl::StatusOr<TokenPtr>> received_ ABSL_GUARDED_BY(mu_);
};

class TokenCacheTest : public ::testing::Test {
 protected:
  TokenCacheTest() : fetcher_(&clock_) {}

  // Jitter sample 0.5 maps to no jitter: renewal exactly at 75% of the
  // lifetime, backoff at half its ceiling.
  void MakeCache(RenewalSettings renewal = {}, int workers = 4,
                 double random = 0.5, LimitsSettings limits = {}) {
    TokenCache::Options options;
    options.clock = &clock_;
    options.random_unit = [random] { return random; };
    cache_ = std::make_unique<TokenCache>(&fetcher_, renewal, workers, options,
                                          limits);
    cache_->SetObserver(&fetches_);
    clock_.AddListener([this] { cache_->Wake(); });
  }

  absl::StatusOr<TokenPtr> Get(const CacheKey& key,
                               TokenCache::GetOptions options = {}) {
    return cache_->Get(key, options, absl::Now() + absl::Seconds(10));
  }

  // `n` callers call Get(key_, options) while the fetcher is held, so they
  // all pile onto one fetch; returns their answers once it is released.
  std::vector<absl::StatusOr<TokenPtr>> GetConcurrentlyWhileHeld(
      int n, TokenCache::GetOptions options = {}) {
    fetcher_.Hold();
    std::vector<std::thread> threads;
    std::vector<absl::StatusOr<TokenPtr>> results(n);
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] { results[i] = Get(key_, options); });
    }
    EXPECT_TRUE(fetcher_.WaitForInFlight(1));
    fetcher_.Release();
    for (auto& t : threads) t.join();
    return results;
  }

  const CacheKey key_{"acme", ScopeSet::FromList({"admin", "read_all"})};
  FakeClock clock_;
  FakeTokenFetcher fetcher_;
  FetchWaiter fetches_;
  std::unique_ptr<TokenCache> cache_;
};

TEST_F(TokenCacheTest, ColdGetFetchesOnceThenServesFromCache) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  ASSERT_OK_AND_ASSIGN(TokenPtr second, Get(key_));
  EXPECT_EQ(first->token.access_token, "jwt-acme-1");
  EXPECT_EQ(second, first);
  EXPECT_EQ(fetcher_.calls(), 1);
  EXPECT_EQ(fetcher_.requests()[0].scopes.ToOAuthString(), "admin read_all");
}

TEST_F(TokenCacheTest, ScopeOrderAndDuplicatesShareOneEntry) {
  MakeCache();
  const std::vector<std::string> a = {"read_all", "admin"};
  const std::vector<std::string> b = {"admin", "read_all", "admin"};
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get({"acme", ScopeSet::FromList(a)}));
  ASSERT_OK_AND_ASSIGN(TokenPtr second, Get({"acme", ScopeSet::FromList(b)}));
  EXPECT_EQ(first, second);
  EXPECT_EQ(fetcher_.calls(), 1);
}

TEST_F(TokenCacheTest, ConcurrentColdCallersShareOneFetch) {
  MakeCache();
  const auto results = GetConcurrentlyWhileHeld(200);
  EXPECT_EQ(fetcher_.calls(), 1);
  for (const auto& r : results) {
    ASSERT_OK(r);
    EXPECT_EQ((*r)->token.access_token, "jwt-acme-1");
  }
}

TEST_F(TokenCacheTest, OtherEntriesAreNotBlockedBehindASlowFetch) {
  MakeCache();
  fetcher_.Hold();
  absl::StatusOr<TokenPtr> slow;
  std::thread slow_caller([&] { slow = Get(key_); });
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  // A second tenant's cold fetch runs in parallel instead of queueing
  // behind the first one.
  TokenRecorder other;
  cache_->GetAsync({"other", ScopeSet()}, {}, other.Callback());
  ASSERT_TRUE(fetcher_.WaitForInFlight(2));
  fetcher_.Release();
  slow_caller.join();
  ASSERT_OK(slow);
  ASSERT_TRUE(other.WaitForCount(1));
  EXPECT_OK(other.received()[0]);
}

TEST_F(TokenCacheTest, CancelledWaiterIsAnsweredAtOnceAndOthersStillGetTheToken) {
  MakeCache();
  fetcher_.Hold();
  TokenRecorder leaving, staying;
  const uint64_t id = cache_->GetAsync(key_, {}, leaving.Callback());
  ASSERT_NE(id, 0u);
  cache_->GetAsync(key_, {}, staying.Callback());
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  cache_->CancelWaiter(key_, id);
  ASSERT_TRUE(leaving.WaitForCount(1));
  EXPECT_THAT(leaving.received()[0],
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("went away")));
  cache_->CancelWaiter(key_, id);  // already answered: nothing happens
  fetcher_.Release();
  ASSERT_TRUE(staying.WaitForCount(1));
  EXPECT_OK(staying.received()[0]);
  EXPECT_THAT(leaving.received(), SizeIs(1));
  // A hit is answered inline: there is nothing to cancel.
  TokenRecorder hit;
  EXPECT_EQ(cache_->GetAsync(key_, {}, hit.Callback()), 0u);
  EXPECT_THAT(hit.received(), SizeIs(1));
}

TEST_F(TokenCacheTest, CachedEntryAnswersWhileAnotherEntryFetches) {
  MakeCache();
  ASSERT_OK(Get(key_));
  fetcher_.Hold();
  cache_->GetAsync({"other", ScopeSet()}, {}, [](auto) {});
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  // Answered from cache while the other fetch is stuck.
  std::atomic<bool> answered{false};
  cache_->GetAsync(key_, {}, [&](absl::StatusOr<TokenPtr> t) {
    answered = t.ok();
  });
  EXPECT_TRUE(answered);  // inline: no fetch, no wait
  fetcher_.Release();
}

TEST_F(TokenCacheTest, FetchesNeverExceedTheConcurrencyBound) {
  MakeCache({}, /*workers=*/2);
  fetcher_.Hold();
  for (int i = 0; i < 10; ++i) {
    cache_->GetAsync({absl::StrCat("t", i), ScopeSet()}, {}, [](auto) {});
  }
  ASSERT_TRUE(fetcher_.WaitForInFlight(2));
  fetcher_.Release();
  ASSERT_TRUE(fetches_.WaitForFetches(10));
  EXPECT_EQ(fetcher_.max_in_flight(), 2);
  EXPECT_EQ(fetcher_.calls(), 10);
}

TEST_F(TokenCacheTest, RenewsBeforeExpiryWithNoCallerAsking) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  TokenRecorder recorder;
  // Renewal is due at 75% of the hour (no jitter with sample 0.5).
  ASSERT_THAT(cache_->Snapshot(), SizeIs(1));
  EXPECT_EQ(cache_->Snapshot()[0].renew_at,
            first->token.obtained_at + absl::Minutes(45));
  clock_.Advance(absl::Minutes(44));
  EXPECT_EQ(fetcher_.calls(), 1);
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(fetches_.WaitForFetches(2));
  ASSERT_OK_AND_ASSIGN(TokenPtr second, Get(key_));
  EXPECT_EQ(second->token.access_token, "jwt-acme-2");
  EXPECT_EQ(second->version, 2u);
}

TEST_F(TokenCacheTest, JitterMovesRenewalWithinBounds) {
  RenewalSettings settings;  // 25% remaining, ±5% jitter
  for (double sample : {0.0, 1.0}) {
    FakeTokenFetcher fetcher(&clock_);
    TokenCache::Options options;
    options.clock = &clock_;
    options.random_unit = [sample] { return sample; };
    TokenCache cache(&fetcher, settings,
                     UpstreamSettings().max_concurrent_requests, options);
    ASSERT_OK_AND_ASSIGN(TokenPtr t,
                         cache.Get(key_, {}, absl::Now() + absl::Seconds(10)));
    const absl::Duration offset =
        cache.Snapshot()[0].renew_at - t->token.obtained_at;
    EXPECT_EQ(offset, sample == 0.0 ? absl::Minutes(42) : absl::Minutes(48));
  }
}

TEST_F(TokenCacheTest, FailedRenewalKeepsServingTheValidToken) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  fetcher_.SetPersistentError(absl::UnavailableError("tenant acme: HTTP 503"));
  clock_.Advance(absl::Minutes(45));
  ASSERT_TRUE(fetches_.WaitForFetches(2));
  ASSERT_OK_AND_ASSIGN(TokenPtr served, Get(key_));
  EXPECT_EQ(served, first);
  const EntrySnapshot snap = cache_->Snapshot()[0];
  EXPECT_EQ(snap.state, EntrySnapshot::State::kFailing);
  EXPECT_EQ(snap.consecutive_failures, 1);
  EXPECT_EQ(snap.served_while_failing, 1);
  // Retry scheduled with backoff: half of the 1s initial ceiling.
  EXPECT_EQ(snap.renew_at, clock_.Now() + absl::Milliseconds(500));
}

TEST_F(TokenCacheTest, OutageServesUntilSafetyMarginThenUnavailableThenRecovers) {
  RenewalSettings settings;
  settings.max_backoff = absl::Minutes(2);
  MakeCache(settings);
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  fetcher_.SetPersistentError(
      absl::UnavailableError("tenant acme: connect: connection refused"));
  clock_.Advance(absl::Minutes(45));  // renewal due, fails
  ASSERT_TRUE(fetches_.WaitForFetches(2));
  // Still served one second before the safety margin (60s before expiry).
  clock_.Set(first->token.expires_at - absl::Seconds(61));
  ASSERT_OK(Get(key_));
  // Inside the margin: not handed out any more.
  clock_.Set(first->token.expires_at - absl::Seconds(59));
  absl::StatusOr<TokenPtr> refused = Get(key_);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("connection refused")));
  // Treezor recovers: the background retries find it with no caller action.
  fetcher_.SetPersistentError(absl::OkStatus());
  clock_.Advance(absl::Minutes(2));  // past any backoff (max 2 min)
  ASSERT_TRUE(fetches_.WaitForSuccesses(2));
  ASSERT_OK_AND_ASSIGN(TokenPtr recovered, Get(key_));
  EXPECT_NE(recovered->token.access_token, first->token.access_token);
}

TEST_F(TokenCacheTest, CallersDuringBackoffGetTheErrorWithoutNewFetches) {
  MakeCache();
  fetcher_.PushError(absl::UnavailableError("tenant acme: HTTP 502"),
                     absl::Seconds(30));
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable,
                                  HasSubstr("HTTP 502")));
  for (int i = 0; i < 20; ++i) {
    EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable,
                                    HasSubstr("HTTP 502")));
  }
  EXPECT_EQ(fetcher_.calls(), 1);
  // Retry-After (30s) beats the 1s backoff.
  EXPECT_EQ(cache_->Snapshot()[0].renew_at, clock_.Now() + absl::Seconds(30));
  clock_.Advance(absl::Seconds(30));
  // The entry never had a token and nobody waits: the next caller starts
  // again (no background retry, issue 11 item 3).
  EXPECT_OK(Get(key_));
  EXPECT_EQ(fetcher_.calls(), 2);
}

TEST_F(TokenCacheTest, RefusedCredentialsAreNotHammered) {
  RenewalSettings settings;
  settings.refused_backoff = absl::Minutes(5);
  MakeCache(settings);
  fetcher_.SetPersistentError(absl::FailedPreconditionError(
      "tenant acme: Treezor refused the credentials: invalid_client"));
  for (int i = 0; i < 50; ++i) {
    EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    HasSubstr("invalid_client")));
  }
  EXPECT_EQ(fetcher_.calls(), 1);
  EXPECT_EQ(cache_->Snapshot()[0].renew_at, clock_.Now() + absl::Minutes(5));
}

TEST_F(TokenCacheTest, RetryTenantNowSkipsTheBackoff) {
  RenewalSettings settings;
  settings.refused_backoff = absl::Minutes(5);
  MakeCache(settings);
  fetcher_.PushError(absl::FailedPreconditionError("refused"));
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("refused")));
  cache_->RetryTenantNow("acme");
  // Nobody waits for that entry: the backoff is lifted for the next caller.
  EXPECT_OK(Get(key_));
  EXPECT_EQ(fetcher_.calls(), 2);
}

TEST_F(TokenCacheTest, BackoffGrowsExponentiallyUpToTheCap) {
  RenewalSettings settings;
  settings.initial_backoff = absl::Seconds(1);
  settings.max_backoff = absl::Seconds(8);
  MakeCache(settings, 4, /*random=*/1.0);  // full ceiling
  fetcher_.SetPersistentError(absl::UnavailableError("down"));
  std::vector<absl::Duration> delays;
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable,
                                  HasSubstr("down")));
  for (int i = 1; i <= 5; ++i) {
    const absl::Duration d = cache_->Snapshot()[0].renew_at - clock_.Now();
    delays.push_back(d);
    clock_.Advance(d);
    // No token ever, nobody waiting: no background retry; the next caller
    // after the backoff starts again (issue 11 item 3).
    EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable,
                                    HasSubstr("down")));
    ASSERT_TRUE(fetches_.WaitForFetches(i + 1));
  }
  EXPECT_THAT(delays, ::testing::ElementsAre(absl::Seconds(1), absl::Seconds(2),
                                             absl::Seconds(4), absl::Seconds(8),
                                             absl::Seconds(8)));
}

TEST_F(TokenCacheTest, MinTtlLongerThanWhatIsLeftFetchesAFreshToken) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  clock_.Advance(absl::Minutes(30));  // 30 min left, renewal not yet due
  ASSERT_OK_AND_ASSIGN(TokenPtr same, Get(key_, {.min_ttl = absl::Minutes(20)}));
  EXPECT_EQ(same, first);
  ASSERT_OK_AND_ASSIGN(TokenPtr fresh, Get(key_, {.min_ttl = absl::Minutes(40)}));
  EXPECT_NE(fresh, first);
  EXPECT_GE(fresh->token.expires_at - clock_.Now(), absl::Minutes(40));
  EXPECT_EQ(fetcher_.calls(), 2);
}

TEST_F(TokenCacheTest, MinTtlBeyondAFreshTokensLifetimeIsOutOfRange) {
  MakeCache();
  EXPECT_THAT(Get(key_, {.min_ttl = absl::Hours(2)}),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("min_ttl")));
  // With a token cached, answered at once without another fetch.
  EXPECT_THAT(Get(key_, {.min_ttl = absl::Hours(2)}),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("min_ttl")));
  EXPECT_EQ(fetcher_.calls(), 1);
}

// The GetToken hit path (issue 13): TryGet answers what GetAsync would
// answer at once, and starts nothing when GetAsync would have to wait.
TEST_F(TokenCacheTest, TryGetAnswersHitsAndImmediateErrorsAndStartsNothingElse) {
  MakeCache();
  EXPECT_EQ(cache_->TryGet(key_, {}), std::nullopt);  // cold
  EXPECT_EQ(cache_->waiters(key_), 0u);
  EXPECT_EQ(cache_->fetches_in_flight(), 0);
  EXPECT_EQ(fetcher_.calls(), 0);
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  std::optional<absl::StatusOr<TokenPtr>> hit = cache_->TryGet(key_, {});
  ASSERT_TRUE(hit.has_value());
  ASSERT_OK(*hit);
  EXPECT_EQ(**hit, first);
  // An error GetAsync answers at once is TryGet's too.
  std::optional<absl::StatusOr<TokenPtr>> too_long =
      cache_->TryGet(key_, {.min_ttl = absl::Hours(2)});
  ASSERT_TRUE(too_long.has_value());
  EXPECT_THAT(*too_long,
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("min_ttl")));
  // A token too old for the caller's min_ttl must be fetched: not TryGet's.
  clock_.Advance(absl::Minutes(30));
  EXPECT_EQ(cache_->TryGet(key_, {.min_ttl = absl::Minutes(40)}), std::nullopt);
  // A rejected-token report is GetAsync's alone (it records itself), so a
  // TryGet before it does not use up the report's fetch.
  EXPECT_EQ(cache_->TryGet(key_, {.rejected_token_sha256 = first->sha256_hex}),
            std::nullopt);
  EXPECT_EQ(fetcher_.calls(), 1);
  EXPECT_EQ(cache_->waiters(key_), 0u);
  ASSERT_OK_AND_ASSIGN(TokenPtr replaced,
                       Get(key_, {.rejected_token_sha256 = first->sha256_hex}));
  EXPECT_NE(replaced, first);
  EXPECT_EQ(fetcher_.calls(), 2);
}

TEST_F(TokenCacheTest, RejectedCurrentTokenIsReplacedOnce) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  const auto results = GetConcurrentlyWhileHeld(
      100, {.rejected_token_sha256 = first->sha256_hex});
  EXPECT_EQ(fetcher_.calls(), 2);
  for (const auto& r : results) {
    ASSERT_OK(r);
    EXPECT_EQ((*r)->token.access_token, "jwt-acme-2");
  }
}

TEST_F(TokenCacheTest, RejectingAnOldTokenReturnsTheCurrentOne) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  ASSERT_OK_AND_ASSIGN(
      TokenPtr current,
      Get(key_, {.rejected_token_sha256 = TokenSha256Hex("some-old-token")}));
  EXPECT_EQ(current, first);
  EXPECT_EQ(fetcher_.calls(), 1);
}

// Issue 10 item 4: a rejected-token report is a hint, not an eviction.
TEST_F(TokenCacheTest, ReportedTokenKeepsBeingServedWhileItsReplacementIsFetched) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  fetcher_.Hold();
  TokenRecorder reporter;
  EXPECT_NE(cache_->GetAsync(key_, {.rejected_token_sha256 = first->sha256_hex},
                             reporter.Callback()),
            0u);
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  // Everyone else is answered at once, with the reported token.
  TokenRecorder other;
  EXPECT_EQ(cache_->GetAsync(key_, {}, other.Callback()), 0u);
  const auto answered_at_once = other.received();
  fetcher_.Release();
  ASSERT_THAT(answered_at_once, SizeIs(1));
  ASSERT_OK(answered_at_once[0]);
  EXPECT_EQ(*answered_at_once[0], first);
  ASSERT_TRUE(reporter.WaitForCount(1));
  ASSERT_OK(reporter.received()[0]);
  EXPECT_EQ((*reporter.received()[0])->token.access_token, "jwt-acme-2");
  EXPECT_EQ(fetcher_.calls(), 2);
}

TEST_F(TokenCacheTest, FailedReplacementKeepsServingTheReportedToken) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  fetcher_.PushError(absl::UnavailableError("HTTP 503"));
  // The reporter asked for a replacement and none could be obtained.
  EXPECT_THAT(Get(key_, {.rejected_token_sha256 = first->sha256_hex}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("HTTP 503")));
  ASSERT_OK_AND_ASSIGN(TokenPtr still, Get(key_));
  EXPECT_EQ(still, first);
  EXPECT_EQ(fetcher_.calls(), 2);
}

TEST_F(TokenCacheTest, ReportsWithinTheMinIntervalGetTheCurrentTokenWithoutAFetch) {
  RenewalSettings settings;
  settings.rejected_token_min_interval = absl::Seconds(10);
  MakeCache(settings);
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  ASSERT_OK_AND_ASSIGN(TokenPtr second,
                       Get(key_, {.rejected_token_sha256 = first->sha256_hex}));
  EXPECT_EQ(second->token.access_token, "jwt-acme-2");
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK_AND_ASSIGN(
        TokenPtr same, Get(key_, {.rejected_token_sha256 = second->sha256_hex}));
    EXPECT_EQ(same, second);
  }
  EXPECT_EQ(fetcher_.calls(), 2);
  clock_.Advance(absl::Seconds(10));
  ASSERT_OK_AND_ASSIGN(TokenPtr third,
                       Get(key_, {.rejected_token_sha256 = second->sha256_hex}));
  EXPECT_EQ(third->token.access_token, "jwt-acme-3");
  EXPECT_EQ(fetcher_.calls(), 3);
}

TEST_F(TokenCacheTest, ReportsDuringBackoffGetTheCurrentTokenWithoutAFetch) {
  RenewalSettings settings;
  settings.rejected_token_min_interval = absl::ZeroDuration();
  MakeCache(settings);
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  fetcher_.PushError(absl::UnavailableError("HTTP 503"));
  EXPECT_THAT(Get(key_, {.rejected_token_sha256 = first->sha256_hex}),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  // No report window, but the entry backs off after the failure.
  ASSERT_OK_AND_ASSIGN(TokenPtr same,
                       Get(key_, {.rejected_token_sha256 = first->sha256_hex}));
  EXPECT_EQ(same, first);
  EXPECT_EQ(fetcher_.calls(), 2);
}

// Issue 10 item 5: a token that lives too short is an error, not a success.
class ShortLifetimeTest : public TokenCacheTest,
                          public ::testing::WithParamInterface<absl::Duration> {};

TEST_P(ShortLifetimeTest, IsAnErrorWithBackoffNotARenewalLoop) {
  fetcher_.SetLifetime(GetParam());
  MakeCache();  // min_token_lifetime 5 s; backoff 0.5 s at jitter 0.5
  const auto first = Get(key_);
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kUnavailable,
                              HasSubstr("below renewal.minTokenLifetime (5s)")));
  EXPECT_THAT(first.status().message(),
              HasSubstr(absl::StrCat("lifetime of ",
                                     absl::FormatDuration(GetParam()))));
  EXPECT_THAT(first.status().message(), ::testing::Not(HasSubstr("jwt-")));
  ASSERT_TRUE(fetches_.WaitForFetches(1));
  EXPECT_THAT(fetches_.outcomes(), ::testing::ElementsAre("short_lifetime"));
  // Callers during the backoff get the error without a request each.
  for (int i = 0; i < 20; ++i) {
    EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable,
                                    HasSubstr("renewal.minTokenLifetime")));
  }
  clock_.Advance(absl::Milliseconds(400));
  EXPECT_EQ(fetcher_.calls(), 1);
  EXPECT_EQ(cache_->Snapshot()[0].consecutive_failures, 1);
}

INSTANTIATE_TEST_SUITE_P(TokenCache, ShortLifetimeTest,
                         ::testing::Values(absl::Seconds(1),
                                           absl::Milliseconds(1),
                                           absl::Seconds(4)));

TEST_F(TokenCacheTest, JwtExpiringASecondAfterItArrivedIsRefused) {
  MakeCache();
  Token token;
  token.access_token = "jwt-short";
  token.token_type = "Bearer";
  token.obtained_at = clock_.Now();
  token.expires_at = token.obtained_at + absl::Seconds(1);  // as read from exp
  fetcher_.Push(FetchResult{token, std::nullopt, false, "ok", "password"});
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable,
                                  HasSubstr("renewal.minTokenLifetime")));
  ASSERT_TRUE(fetches_.WaitForFetches(1));
  EXPECT_EQ(fetcher_.calls(), 1);
}

TEST_F(TokenCacheTest, TokensAtTheLifetimeFloorAreServed) {
  fetcher_.SetLifetime(absl::Seconds(10));  // a short demo token
  RenewalSettings settings;
  settings.min_token_lifetime = absl::Seconds(10);
  MakeCache(settings);
  ASSERT_OK_AND_ASSIGN(TokenPtr token, Get(key_));
  EXPECT_EQ(token->token.lifetime(), absl::Seconds(10));
}

TEST_F(TokenCacheTest, ShortLivedRenewalKeepsServingTheValidToken) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  fetcher_.SetLifetime(absl::Seconds(1));
  clock_.Advance(absl::Minutes(45));  // renewal due
  ASSERT_TRUE(fetches_.WaitForFetches(2));
  ASSERT_OK_AND_ASSIGN(TokenPtr still, Get(key_));
  EXPECT_EQ(still, first);
  EXPECT_EQ(fetcher_.calls(), 2);
}

// Issue 10 item 6: expiry is decided on the monotonic clock.
TEST_F(TokenCacheTest, BackwardWallClockStepDoesNotMakeAnExpiredTokenLookValid) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  fetcher_.SetPersistentError(absl::UnavailableError("HTTP 503"));
  clock_.Advance(absl::Hours(1));  // expired; renewals kept failing
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("503")));
  clock_.StepWallClock(-absl::Hours(2));
  const auto after_step = Get(key_);
  EXPECT_THAT(after_step, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("503")));
  EXPECT_EQ(cache_->Snapshot()[0].state, EntrySnapshot::State::kExpired);
}

TEST_F(TokenCacheTest, ForwardWallClockStepDoesNotExpireAValidToken) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  clock_.StepWallClock(absl::Hours(3));
  ASSERT_OK_AND_ASSIGN(TokenPtr same, Get(key_));
  EXPECT_EQ(same, first);
  // Nor is the renewal brought forward: it stays 45 min after the fetch.
  clock_.Advance(absl::Minutes(44));
  ASSERT_OK_AND_ASSIGN(same, Get(key_));
  EXPECT_EQ(same, first);
  EXPECT_EQ(fetcher_.calls(), 1);
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(fetches_.WaitForSuccesses(2));
  // The API's expires_at stays wall-clock: as the fetcher computed it.
  ASSERT_OK_AND_ASSIGN(TokenPtr second, Get(key_));
  EXPECT_EQ(second->token.expires_at, second->token.obtained_at + absl::Hours(1));
}

TEST_F(TokenCacheTest, SnapshotReportsWallClockTimes) {
  MakeCache();
  const absl::Time fetched_at = clock_.Now();
  ASSERT_OK(Get(key_));
  const EntrySnapshot s = cache_->Snapshot()[0];
  EXPECT_EQ(s.expires_at, fetched_at + absl::Hours(1));
  EXPECT_EQ(s.renew_at, fetched_at + absl::Minutes(45));
  EXPECT_EQ(s.last_renewal, fetched_at);
  EXPECT_EQ(s.usable_until, fetched_at + absl::Minutes(59));
}

// Issue 11 item 2: scope sets are capped per tenant and per caller.
CacheKey KeyWithScope(const std::string& tenant, int i) {
  return {tenant, ScopeSet::FromList({absl::StrCat("scope", i)})};
}

TEST_F(TokenCacheTest, ScopeSetsPerTenantAreCapped) {
  LimitsSettings limits;
  limits.max_scope_sets_per_tenant = 3;
  MakeCache({}, 4, 0.5, limits);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(cache_->Get(KeyWithScope("acme", i),
                          {.caller = absl::StrCat("caller", i)},
                          absl::Now() + absl::Seconds(10)));
  }
  EXPECT_THAT(cache_->Get(KeyWithScope("acme", 3), {.caller = "caller9"},
                          absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("limits.maxScopeSetsPerTenant (3) reached "
                                 "for tenant \"acme\"")));
  // Existing entries and other tenants are unaffected.
  ASSERT_OK(cache_->Get(KeyWithScope("acme", 0), {.caller = "caller9"},
                        absl::Now() + absl::Seconds(10)));
  ASSERT_OK(cache_->Get(KeyWithScope("other", 3), {.caller = "caller9"},
                        absl::Now() + absl::Seconds(10)));
  EXPECT_EQ(fetcher_.calls(), 4);
}

TEST_F(TokenCacheTest, ScopeSetsPerCallerCountOnlyEntriesItCreated) {
  LimitsSettings limits;
  limits.max_scope_sets_per_caller = 2;
  MakeCache({}, 4, 0.5, limits);
  const auto get = [&](const CacheKey& key, const std::string& caller) {
    return cache_->Get(key, {.caller = caller}, absl::Now() + absl::Seconds(10));
  };
  // The broker's own prefetch counts for nobody; sharing it is free.
  cache_->Prefetch(KeyWithScope("acme", 0));
  ASSERT_OK(get(KeyWithScope("acme", 0), "mallory"));
  ASSERT_OK(get(KeyWithScope("acme", 1), "alice"));
  ASSERT_OK(get(KeyWithScope("acme", 1), "mallory"));  // shared: free
  ASSERT_OK(get(KeyWithScope("acme", 2), "mallory"));
  ASSERT_OK(get(KeyWithScope("acme", 3), "mallory"));
  EXPECT_THAT(get(KeyWithScope("acme", 4), "mallory"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("limits.maxScopeSetsPerCaller (2) reached "
                                 "for caller \"mallory\"")));
  ASSERT_OK(get(KeyWithScope("acme", 4), "alice"));
}

TEST_F(TokenCacheTest, IdleEntriesFreeTheirSlot) {
  RenewalSettings settings;
  settings.idle_timeout = absl::Minutes(30);
  LimitsSettings limits;
  limits.max_scope_sets_per_tenant = 1;
  limits.max_scope_sets_per_caller = 1;
  MakeCache(settings, 4, 0.5, limits);
  ASSERT_OK(cache_->Get(KeyWithScope("acme", 0), {.caller = "alice"},
                        absl::Now() + absl::Seconds(10)));
  EXPECT_THAT(cache_->Get(KeyWithScope("acme", 1), {.caller = "alice"},
                          absl::Now() + absl::Seconds(10)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("limits.")));
  clock_.Advance(absl::Minutes(45));  // due, idle: dropped
  ASSERT_TRUE(fetches_.WaitForDrops(1));
  ASSERT_OK(cache_->Get(KeyWithScope("acme", 1), {.caller = "alice"},
                        absl::Now() + absl::Seconds(10)));
}

TEST_F(TokenCacheTest, IdleEntriesStopBeingRenewedAndAreDropped) {
  RenewalSettings settings;
  settings.idle_timeout = absl::Minutes(30);
  MakeCache(settings);
  ASSERT_OK(Get(key_));
  clock_.Advance(absl::Minutes(45));  // due, but unused for 45 min > 30
  ASSERT_TRUE(fetches_.WaitForDrops(1));
  EXPECT_THAT(cache_->Snapshot(), SizeIs(0));
  EXPECT_EQ(fetcher_.calls(), 1);
}

TEST_F(TokenCacheTest, EntriesInUseKeepBeingRenewed) {
  RenewalSettings settings;
  settings.idle_timeout = absl::Minutes(30);
  MakeCache(settings);
  ASSERT_OK(Get(key_));
  clock_.Advance(absl::Minutes(40));
  ASSERT_OK(Get(key_));  // used 5 minutes before renewal
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(fetches_.WaitForFetches(2));
  EXPECT_THAT(cache_->Snapshot(), SizeIs(1));
}

TEST_F(TokenCacheTest, SubscribersReceiveEveryRenewedToken) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  TokenRecorder recorder;
  const uint64_t handle =
      cache_->Subscribe(key_, first->version, recorder.Callback());
  clock_.Advance(absl::Minutes(45));
  ASSERT_TRUE(recorder.WaitForCount(1));
  clock_.Advance(absl::Minutes(45));
  ASSERT_TRUE(recorder.WaitForCount(2));
  auto received = recorder.received();
  ASSERT_OK(received[0]);
  ASSERT_OK(received[1]);
  EXPECT_EQ((*received[0])->version, 2u);
  EXPECT_EQ((*received[1])->version, 3u);
  cache_->Unsubscribe(key_, handle);
}

TEST_F(TokenCacheTest, SubscribingBehindTheCurrentVersionGetsItAtOnce) {
  MakeCache();
  ASSERT_OK(Get(key_));
  TokenRecorder recorder;
  cache_->Subscribe(key_, /*after_version=*/0, recorder.Callback());
  ASSERT_TRUE(recorder.WaitForCount(1, absl::ZeroDuration()));
}

TEST_F(TokenCacheTest, PasswordGrantRenewsWithTheRefreshTokenUntilItIsOld) {
  RenewalSettings settings;
  settings.refresh_token_max_age = absl::Hours(2);
  settings.idle_timeout = absl::Hours(10);  // nobody calls Get meanwhile
  MakeCache(settings);
  fetcher_.SetIssueRefreshTokens(true);
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  EXPECT_TRUE(first->token.refresh_token.empty());  // never leaves the entry
  for (int i = 2; i <= 4; ++i) {
    clock_.Advance(absl::Minutes(45));
    ASSERT_TRUE(fetches_.WaitForFetches(i));
  }
  const auto requests = fetcher_.requests();
  ASSERT_THAT(requests, SizeIs(4));
  EXPECT_EQ(requests[0].refresh_token, "");
  EXPECT_EQ(requests[1].refresh_token, "rt-1");  // 45 min into the chain
  EXPECT_EQ(requests[2].refresh_token, "rt-2");  // rotated token used
  EXPECT_EQ(requests[3].refresh_token, "");      // chain 2h15 old: restart
}

TEST_F(TokenCacheTest, RefusedRefreshTokenFallsBackToFullAuthenticationAtOnce) {
  MakeCache();
  fetcher_.SetIssueRefreshTokens(true);
  ASSERT_OK(Get(key_));
  FetchResult refused{absl::FailedPreconditionError("invalid_grant")};
  refused.refresh_token_rejected = true;
  fetcher_.Push(std::move(refused));
  clock_.Advance(absl::Minutes(45));
  ASSERT_TRUE(fetcher_.WaitForCalls(3));
  const auto requests = fetcher_.requests();
  EXPECT_EQ(requests[1].refresh_token, "rt-1");
  EXPECT_EQ(requests[2].refresh_token, "");
}

TEST_F(TokenCacheTest, ForcedRefreshReplacesAFreshToken) {
  MakeCache();
  ASSERT_OK_AND_ASSIGN(TokenPtr first, Get(key_));
  TokenRecorder recorder;
  cache_->RefreshAsync(key_, recorder.Callback());
  ASSERT_TRUE(recorder.WaitForCount(1));
  ASSERT_OK(recorder.received()[0]);
  EXPECT_NE(*recorder.received()[0], first);
}

TEST_F(TokenCacheTest, RemovedTenantFailsWaitersAndStopsRenewal) {
  MakeCache();
  ASSERT_OK(Get(key_));
  TokenRecorder watcher;
  cache_->Subscribe(key_, 1, watcher.Callback());
  cache_->RemoveTenant("acme");
  ASSERT_TRUE(watcher.WaitForCount(1));
  EXPECT_THAT(watcher.received()[0],
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("acme")));
  EXPECT_THAT(cache_->Snapshot(), SizeIs(0));
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(fetcher_.calls(), 1);
}

TEST_F(TokenCacheTest, ShutdownAnswersPendingWaiters) {
  MakeCache();
  fetcher_.Hold();
  TokenRecorder recorder;
  cache_->GetAsync(key_, {}, recorder.Callback());
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  std::thread stopper([&] { cache_->Shutdown(); });
  fetcher_.Release();
  stopper.join();
  ASSERT_TRUE(recorder.WaitForCount(1));
}

TEST_F(TokenCacheTest, ShutdownDoesNotWaitForAStuckFetchToAnswerCallers) {
  MakeCache();
  fetcher_.Hold();
  TokenRecorder recorder;
  cache_->GetAsync(key_, {}, recorder.Callback());
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  std::thread stopper([&] { cache_->Shutdown(); });
  // Answered while the fetch is still stuck.
  ASSERT_TRUE(recorder.WaitForCount(1));
  EXPECT_THAT(recorder.received()[0],
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting")));
  // Later callers are answered at once too.
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable,
                                  HasSubstr("shutting")));
  fetcher_.Release();
  stopper.join();
}

TEST_F(TokenCacheTest, PrefetchWarmsAnEntryWithoutACaller) {
  MakeCache();
  cache_->Prefetch(key_);
  ASSERT_TRUE(fetches_.WaitForFetches(1));
  ASSERT_OK(Get(key_));
  EXPECT_EQ(fetcher_.calls(), 1);
}

// Issue 11 item 3: work nobody waits for is not done.
TEST_F(TokenCacheTest, CancellingTheLastWaiterDropsTheQueuedFetch) {
  MakeCache({}, /*workers=*/1);
  fetcher_.Hold();
  TokenRecorder busy;
  cache_->GetAsync({"other", ScopeSet()}, {}, busy.Callback());
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));  // the only worker is taken
  TokenRecorder first, second;
  const uint64_t a = cache_->GetAsync(key_, {}, first.Callback());
  const uint64_t b = cache_->GetAsync(key_, {}, second.Callback());
  cache_->CancelWaiter(key_, a);
  EXPECT_EQ(cache_->fetches_dropped(), 0);  // someone still waits
  cache_->CancelWaiter(key_, b);
  EXPECT_EQ(cache_->fetches_dropped(), 1);
  fetcher_.Release();
  ASSERT_TRUE(busy.WaitForCount(1));
  // A later cold request for another entry runs next on the one worker;
  // the dropped fetch never reaches Treezor.
  ASSERT_OK(Get({"third", ScopeSet()}));
  EXPECT_EQ(fetcher_.calls(), 2);
  for (const FetchRequest& r : fetcher_.requests()) {
    EXPECT_NE(r.tenant, "acme");
  }
  EXPECT_THAT(first.received()[0], StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_THAT(second.received()[0], StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  // The next caller starts again.
  ASSERT_OK(Get(key_));
  EXPECT_EQ(fetcher_.calls(), 3);
}

TEST_F(TokenCacheTest, WorkerDropsAQueuedFetchWhoseWatcherLeft) {
  MakeCache({}, /*workers=*/1);
  fetcher_.Hold();
  TokenRecorder busy;
  cache_->GetAsync({"other", ScopeSet()}, {}, busy.Callback());
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  // A subscription queues a background fetch of the cold entry, then goes
  // before it runs: nothing withdraws it, the worker must not send it.
  TokenRecorder watcher;
  const uint64_t handle = cache_->Subscribe(key_, 0, watcher.Callback());
  cache_->Unsubscribe(key_, handle);
  fetcher_.Release();
  ASSERT_TRUE(fetches_.WaitForDroppedFetches(1));
  EXPECT_EQ(cache_->fetches_dropped(), 1);
  EXPECT_EQ(fetcher_.calls(), 1);
  EXPECT_THAT(watcher.received(), SizeIs(0));
}

TEST_F(TokenCacheTest, EntryThatNeverHadATokenIsNotRetriedInTheBackground) {
  RenewalSettings settings;
  settings.refused_backoff = absl::Minutes(5);
  MakeCache(settings, /*workers=*/1);
  // A scope set Treezor refuses, asked for once by a caller that then left.
  fetcher_.PushError(absl::FailedPreconditionError(
      "tenant acme: Treezor refused the scope: invalid_scope"));
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("invalid_scope")));
  // Another entry with a token, due after the refused one's backoff: its
  // renewal (queued after any retry the timer thread would have queued)
  // tells when the timer has dealt with both.
  const CacheKey sentinel{"other", ScopeSet()};
  ASSERT_OK(Get(sentinel));
  clock_.Advance(absl::Minutes(46));  // past the backoff and the renewal
  ASSERT_TRUE(fetches_.WaitForSuccesses(2));
  ASSERT_OK(Get(sentinel));
  ASSERT_EQ(fetcher_.calls(), 3);
  EXPECT_EQ(fetcher_.requests()[2].tenant, "other");
  // The next caller starts again: the backoff it earned is over.
  ASSERT_OK(Get(key_));
  EXPECT_EQ(fetcher_.calls(), 4);
}

TEST_F(TokenCacheTest, NextCallerOfANeverFilledEntryIsGatedByItsBackoff) {
  RenewalSettings settings;
  settings.refused_backoff = absl::Minutes(5);
  MakeCache(settings);
  fetcher_.PushError(absl::FailedPreconditionError("invalid_scope"));
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  clock_.Advance(absl::Minutes(4));
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("invalid_scope")));
  EXPECT_EQ(fetcher_.calls(), 1);
  clock_.Advance(absl::Minutes(1));
  ASSERT_OK(Get(key_));
  EXPECT_EQ(fetcher_.calls(), 2);
}

TEST_F(TokenCacheTest, NeverFilledEntryIsDroppedOnceIdle) {
  RenewalSettings settings;
  settings.idle_timeout = absl::Minutes(30);
  MakeCache(settings);
  fetcher_.PushError(absl::UnavailableError("HTTP 502"));
  EXPECT_THAT(Get(key_), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  clock_.Advance(absl::Minutes(10));  // the retry time: nothing to do
  clock_.Advance(absl::Minutes(25));  // idle: dropped, its slot freed
  ASSERT_TRUE(fetches_.WaitForDrops(1));
  EXPECT_THAT(cache_->Snapshot(), SizeIs(0));
  EXPECT_EQ(fetcher_.calls(), 1);
}

TEST_F(TokenCacheTest, WatchedEntryWithoutATokenKeepsRetrying) {
  MakeCache();
  fetcher_.PushError(absl::UnavailableError("HTTP 502"));
  TokenRecorder watcher;
  cache_->Subscribe(key_, 0, watcher.Callback());
  ASSERT_TRUE(fetches_.WaitForFetches(1));
  clock_.Advance(absl::Minutes(2));  // past the backoff
  ASSERT_TRUE(watcher.WaitForCount(1));
  EXPECT_OK(watcher.received()[0]);
  EXPECT_EQ(fetcher_.calls(), 2);
}

// Issue 11 item 4: tenants take turns for the fetch workers.
TEST_F(TokenCacheTest, AnotherTenantsFirstFetchIsNotQueuedBehindABurst) {
  MakeCache({}, /*workers=*/1);
  fetcher_.Hold();
  std::vector<std::unique_ptr<TokenRecorder>> burst;
  for (int i = 0; i < 50; ++i) {
    burst.push_back(std::make_unique<TokenRecorder>());
    cache_->GetAsync(KeyWithScope("acme", i), {}, burst.back()->Callback());
  }
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  TokenRecorder other;
  cache_->GetAsync({"other", ScopeSet()}, {}, other.Callback());
  fetcher_.Release();
  ASSERT_TRUE(other.WaitForCount(1));
  EXPECT_OK(other.received()[0]);
  for (auto& r : burst) ASSERT_TRUE(r->WaitForCount(1));
  const std::vector<FetchRequest> requests = fetcher_.requests();
  ASSERT_THAT(requests, SizeIs(51));
  EXPECT_EQ(requests[0].tenant, "acme");
  EXPECT_EQ(requests[1].tenant, "other");  // right after the one in progress
}

TEST_F(TokenCacheTest, AnotherTenantsRenewalIsNotQueuedBehindABurst) {
  MakeCache({}, /*workers=*/1);
  const CacheKey other{"other", ScopeSet()};
  ASSERT_OK(Get(other));
  fetcher_.Hold();
  std::vector<std::unique_ptr<TokenRecorder>> burst;
  for (int i = 0; i < 20; ++i) {
    burst.push_back(std::make_unique<TokenRecorder>());
    cache_->GetAsync(KeyWithScope("acme", i), {}, burst.back()->Callback());
  }
  ASSERT_TRUE(fetcher_.WaitForInFlight(1));
  // A background renewal of the other tenant (as its timer would queue).
  cache_->RenewTenantNow("other");
  fetcher_.Release();
  ASSERT_TRUE(fetches_.WaitForFetches(22));
  for (auto& r : burst) ASSERT_TRUE(r->WaitForCount(1));
  const std::vector<FetchRequest> requests = fetcher_.requests();
  ASSERT_THAT(requests, SizeIs(22));
  EXPECT_EQ(requests[1].tenant, "acme");   // in progress
  EXPECT_EQ(requests[2].tenant, "other");  // right after it
}

}  // namespace
}  // namespace treezor::broker
