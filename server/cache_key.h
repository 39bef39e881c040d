// What the token cache keeps one token for: a tenant and a canonical scope
// set (TREEZOR.md: a token for {admin, read_all} is not one for
// {read_write}). A value type; hashable and ordered.
#ifndef TREEZOR_BROKER_SERVER_CACHE_KEY_H_
#define TREEZOR_BROKER_SERVER_CACHE_KEY_H_

#include <string>
#include <utility>

#include "server/scope_set.h"

namespace treezor::broker {

struct CacheKey {
  std::string tenant;
  ScopeSet scopes;

  friend bool operator==(const CacheKey&, const CacheKey&) = default;
  friend auto operator<=>(const CacheKey&, const CacheKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const CacheKey& k) {
    return H::combine(std::move(h), k.tenant, k.scopes);
  }
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CACHE_KEY_H_
