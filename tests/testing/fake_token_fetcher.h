// A scripted TokenFetcher for unit tests of the token cache: answers from a
// queue of results (or issues numbered tokens), records requests, can hold
// fetches at a gate, and lets tests wait for calls without sleeping.
#ifndef TREEZOR_BROKER_TESTS_TESTING_FAKE_TOKEN_FETCHER_H_
#define TREEZOR_BROKER_TESTS_TESTING_FAKE_TOKEN_FETCHER_H_

#include <algorithm>
#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/sync.h"
#include "server/token_fetcher.h"

namespace treezor::broker::testing {

class FakeTokenFetcher final : public TokenFetcher {
 public:
  explicit FakeTokenFetcher(Clock* clock,
                            absl::Duration lifetime = absl::Hours(1))
      : clock_(clock), lifetime_(lifetime) {}

  FetchResult Fetch(const FetchRequest& request) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    requests_.push_back(request);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    cv_.SignalAll();
    while (held_) cv_.Wait(&mu_);
    --in_flight_;
    ++completed_;
    cv_.SignalAll();
    if (!scripted_.empty()) {
      FetchResult r = std::move(scripted_.front());
      scripted_.pop_front();
      return r;
    }
    if (!persistent_error_.ok()) return FetchResult{persistent_error_};
    return FetchResult{IssueLocked(request)};
  }

  // The next Fetch answers `result` (FIFO), instead of a fresh token.
  void Push(FetchResult result) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    scripted_.push_back(std::move(result));
  }
  void PushError(absl::Status status,
                 std::optional<absl::Duration> retry_after = std::nullopt) {
    Push(FetchResult{std::move(status), retry_after});
  }
  // Every Fetch fails with `status` until cleared with OkStatus().
  void SetPersistentError(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    persistent_error_ = std::move(status);
  }
  void SetLifetime(absl::Duration lifetime) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    lifetime_ = lifetime;
  }
  // Issue refresh tokens, as Treezor's password grant does.
  void SetIssueRefreshTokens(bool on) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    issue_refresh_tokens_ = on;
  }

  // While held, Fetch blocks after recording the request.
  void Hold() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    held_ = false;
    cv_.SignalAll();
  }

  // Waits until `n` Fetch calls have started (true) or `timeout` passed.
  bool WaitForCalls(int n, absl::Duration timeout = absl::Seconds(10))
      ABSL_LOCKS_EXCLUDED(mu_) {
    return WaitUntil(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return static_cast<int>(requests_.size()) >= n;
        },
        timeout);
  }
  bool WaitForInFlight(int n, absl::Duration timeout = absl::Seconds(10))
      ABSL_LOCKS_EXCLUDED(mu_) {
    return WaitUntil(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ >= n; },
        timeout);
  }

  int calls() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return static_cast<int>(requests_.size());
  }
  int max_in_flight() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return max_in_flight_;
  }
  std::vector<FetchRequest> requests() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return requests_;
  }

 private:
  template <typename Pred>
  bool WaitUntil(Pred pred, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + timeout, pred);
  }

  Token IssueLocked(const FetchRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Token t;
    ++issued_;
    t.access_token = absl::StrCat("jwt-", request.tenant, "-", issued_);
    t.token_type = "Bearer";
    t.obtained_at = clock_->Now();
    t.expires_at = t.obtained_at + lifetime_;
    if (issue_refresh_tokens_) t.refresh_token = absl::StrCat("rt-", issued_);
    return t;
  }

  Clock* const clock_;
  mutable Mutex mu_;
  mutable CondVar cv_;
  absl::Duration lifetime_ ABSL_GUARDED_BY(mu_);
  std::deque<FetchResult> scripted_ ABSL_GUARDED_BY(mu_);
  absl::Status persistent_error_ ABSL_GUARDED_BY(mu_);
  std::vector<FetchRequest> requests_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool issue_refresh_tokens_ ABSL_GUARDED_BY(mu_) = false;
  int issued_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int completed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_FAKE_TOKEN_FETCHER_H_
