// A token as the token cache hands it out: immutable once published and
// shared by every reader (std::shared_ptr<const CachedToken>), with the
// digests that name it in logs, reports and metrics without revealing it.
#ifndef TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_
#define TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "server/token.h"

namespace treezor::broker {

// A value made from an immutable object by its first user and shared by every
// user after it, without a lock once made (std::call_once). One slot holds one
// type T (type-erased, so its holder needs no template parameter); a copy of
// the holder starts empty, since what was derived belongs to the original.
class DerivedOnce {
 public:
  DerivedOnce() = default;
  DerivedOnce(const DerivedOnce&) {}
  DerivedOnce& operator=(const DerivedOnce&) = delete;

  template <typename T>
  const T& Get(absl::FunctionRef<std::shared_ptr<const T>()> make) const {
    std::call_once(once_, [&] { value_ = make(); });
    return *static_cast<const T*>(value_.get());
  }

 private:
  mutable std::once_flag once_;
  // Written once inside call_once, read only after it: no lock needed.
  mutable std::shared_ptr<const void> value_;
};

struct CachedToken {
  // refresh_token is always empty: the chain never leaves the cache entry.
  Token token;
  // Increases by one with every token the entry obtains.
  uint64_t version = 0;
  std::string sha256_hex;   // of token.access_token
  std::string fingerprint;  // short form, for logs
  // The token's life on the clock's monotonic timeline (Clock::MonotonicNow):
  // from when the answer arrived, for token.lifetime() as the fetcher
  // computed it. Validity and renewal are decided on these, so a wall-clock
  // step neither revives nor kills a token; token.expires_at stays the
  // wall-clock time the API reports.
  absl::Time steady_obtained_at = absl::InfinitePast();
  absl::Time steady_expires_at = absl::InfinitePast();
  // Until when the cache hands it out (UsableUntil of SteadyTiming, under the
  // cache's renewal settings), computed once when it is stored.
  absl::Time steady_usable_until = absl::InfinitePast();
  // What the gRPC layer derives from this token once: the serialized
  // GetTokenResponse every call answered with this token sends as it is
  // (token_service.cc).
  DerivedOnce derived;

  // The timing renewal_policy.h's rules take, on the monotonic timeline.
  Token SteadyTiming() const {
    Token t;
    t.obtained_at = steady_obtained_at;
    t.expires_at = steady_expires_at;
    return t;
  }
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_
