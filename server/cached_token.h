// A token as the token cache hands it out: immutable once published and
// shared by every reader (std::shared_ptr<const CachedToken>), with the
// digests that name it in logs, reports and metrics without revealing it.
#ifndef TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_
#define TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_

#include <cstdint>
#include <string>

#include "server/token.h"

namespace treezor::broker {

struct CachedToken {
  // refresh_token is always empty: the chain never leaves the cache entry.
  Token token;
  // Increases by one with every token the entry obtains.
  uint64_t version = 0;
  std::string sha256_hex;   // of token.access_token
  std::string fingerprint;  // short form, for logs
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CACHED_TOKEN_H_
