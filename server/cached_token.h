// A token as the token cache hands it out: immutable once published and
// shared by every reader (std::shared_ptr<const CachedToken>), with the
// digests that name it in logs, reports and metrics without revealing it.
#ifndef TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_
#define TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "server/token.h"

namespace treezor::broker {

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
