// A canonical set of Treezor scopes: sorted, deduplicated. Two requests with
// the same scopes in any order (or repeated) map to the same ScopeSet, and so
// to the same cached token.
//
//   ScopeSet s = ScopeSet::FromList({"read_all", "admin", "admin"});
//   s.scopes();          // {"admin", "read_all"}
//   s.ToOAuthString();   // "admin read_all"
#ifndef TREEZOR_BROKER_SERVER_SCOPE_SET_H_
#define TREEZOR_BROKER_SERVER_SCOPE_SET_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"

namespace treezor::broker {

class ScopeSet {
 public:
  ScopeSet() = default;

  // Sorts and deduplicates. Does not validate: see ValidateScope.
  template <typename Range>
  static ScopeSet FromList(const Range& scopes) {
    return ScopeSet(std::vector<std::string>(std::begin(scopes),
                                             std::end(scopes)));
  }
  static ScopeSet FromList(std::initializer_list<absl::string_view> scopes) {
    return ScopeSet(std::vector<std::string>(scopes.begin(), scopes.end()));
  }

  const std::vector<std::string>& scopes() const { return scopes_; }
  bool empty() const { return scopes_.empty(); }
  bool Contains(absl::string_view scope) const;
  // True if every scope of this set is in `other`.
  bool IsSubsetOf(const ScopeSet& other) const;
  // Space-separated, as OAuth's `scope` parameter wants (RFC 6749 §3.3).
  std::string ToOAuthString() const;

  friend bool operator==(const ScopeSet&, const ScopeSet&) = default;
  friend auto operator<=>(const ScopeSet&, const ScopeSet&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const ScopeSet& s) {
    return H::combine(std::move(h), s.scopes_);
  }

 private:
  explicit ScopeSet(std::vector<std::string> scopes);
  std::vector<std::string> scopes_;
};

// A scope is 1..64 characters of letters, digits, '_', '-', '.', ':' (RFC 6749
// allows more, but nothing Treezor issues needs it, and a space would split
// one scope into two). `field` names the offending field in the error.
absl::Status ValidateScope(absl::string_view scope, absl::string_view field);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SCOPE_SET_H_
