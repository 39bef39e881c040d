// The key of the client's token cache: a tenant and a canonical scope set
// (sorted, deduplicated — the broker's notion of "the same token"). Lookups
// go through CacheKeyView, which points at the caller's strings, so a cache
// hit neither copies nor allocates: `CanonicalScopes` sorts pointers on the
// stack (up to 8 scopes).
//
//   CanonicalScopes scopes(requested);                // {"b","a","a"} -> a, b
//   auto it = map.find(CacheKeyView{tenant, scopes.view()});
//
// Not public API: used by TokenClient only.
#ifndef TREEZOR_BROKER_CLIENT_CACHE_KEY_H_
#define TREEZOR_BROKER_CLIENT_CACHE_KEY_H_

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace treezor::client::internal {

// The canonical order of a caller's scope list, as pointers into it. Up to
// kInline scopes are sorted on the stack (insertion sort: lists are short and
// usually already sorted).
class CanonicalScopes {
 public:
  explicit CanonicalScopes(const std::vector<std::string>& scopes) {
    if (scopes.size() > kInline) {
      heap_.reserve(scopes.size());
      for (const std::string& s : scopes) heap_.push_back(&s);
      std::sort(heap_.begin(), heap_.end(), Less);
      heap_.erase(std::unique(heap_.begin(), heap_.end(), Same), heap_.end());
      view_ = heap_;
      return;
    }
    size_t n = 0;
    for (const std::string& s : scopes) {
      size_t i = n;
      while (i > 0 && s < *inline_[i - 1]) --i;
      if (i > 0 && s == *inline_[i - 1]) continue;  // a duplicate
      for (size_t j = n; j > i; --j) inline_[j] = inline_[j - 1];
      inline_[i] = &s;
      ++n;
    }
    view_ = absl::MakeConstSpan(inline_.data(), n);
  }
  CanonicalScopes(const CanonicalScopes&) = delete;
  CanonicalScopes& operator=(const CanonicalScopes&) = delete;

  absl::Span<const std::string* const> view() const { return view_; }

 private:
  static constexpr size_t kInline = 8;
  static bool Less(const std::string* a, const std::string* b) { return *a < *b; }
  static bool Same(const std::string* a, const std::string* b) { return *a == *b; }

  std::array<const std::string*, kInline> inline_;
  std::vector<const std::string*> heap_;
  absl::Span<const std::string* const> view_;
};

struct CacheKeyView {
  absl::string_view tenant;
  absl::Span<const std::string* const> scopes;  // canonical order

  template <typename H>
  friend H AbslHashValue(H h, const CacheKeyView& k) {
    h = H::combine(std::move(h), k.tenant);
    for (const std::string* s : k.scopes) {
      h = H::combine(std::move(h), absl::string_view(*s));
    }
    return H::combine(std::move(h), k.scopes.size());
  }
};

struct CacheKey {
  std::string tenant;
  std::vector<std::string> scopes;  // canonical: sorted, no duplicates

  static CacheKey From(const CacheKeyView& v) {
    CacheKey k{std::string(v.tenant), {}};
    k.scopes.reserve(v.scopes.size());
    for (const std::string* s : v.scopes) k.scopes.push_back(*s);
    return k;
  }
  // For messages: `tenant "acme" scopes [admin read_all]`.
  std::string ToString() const {
    return "tenant \"" + tenant + "\" scopes [" + absl::StrJoin(scopes, " ") +
           "]";
  }

  friend bool operator==(const CacheKey&, const CacheKey&) = default;

  // Hashes exactly like the equal CacheKeyView.
  template <typename H>
  friend H AbslHashValue(H h, const CacheKey& k) {
    h = H::combine(std::move(h), absl::string_view(k.tenant));
    for (const std::string& s : k.scopes) {
      h = H::combine(std::move(h), absl::string_view(s));
    }
    return H::combine(std::move(h), k.scopes.size());
  }
};

// Transparent hash and equality, so a CacheKeyView finds a CacheKey.
struct CacheKeyHash {
  using is_transparent = void;
  size_t operator()(const CacheKey& k) const { return absl::Hash<CacheKey>()(k); }
  size_t operator()(const CacheKeyView& k) const {
    return absl::Hash<CacheKeyView>()(k);
  }
};

struct CacheKeyEq {
  using is_transparent = void;
  static bool Equal(const CacheKey& a, const CacheKeyView& b) {
    if (a.tenant != b.tenant || a.scopes.size() != b.scopes.size()) return false;
    for (size_t i = 0; i < a.scopes.size(); ++i) {
      if (a.scopes[i] != *b.scopes[i]) return false;
    }
    return true;
  }
  bool operator()(const CacheKey& a, const CacheKey& b) const { return a == b; }
  bool operator()(const CacheKey& a, const CacheKeyView& b) const {
    return Equal(a, b);
  }
  bool operator()(const CacheKeyView& a, const CacheKey& b) const {
    return Equal(b, a);
  }
};

}  // namespace treezor::client::internal

#endif  // TREEZOR_BROKER_CLIENT_CACHE_KEY_H_
