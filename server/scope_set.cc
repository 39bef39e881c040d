#include "server/scope_set.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace treezor::broker {

ScopeSet::ScopeSet(std::vector<std::string> scopes) : scopes_(std::move(scopes)) {
  std::sort(scopes_.begin(), scopes_.end());
  scopes_.erase(std::unique(scopes_.begin(), scopes_.end()), scopes_.end());
}

bool ScopeSet::Contains(absl::string_view scope) const {
  return std::binary_search(scopes_.begin(), scopes_.end(), scope);
}

bool ScopeSet::IsSubsetOf(const ScopeSet& other) const {
  return std::includes(other.scopes_.begin(), other.scopes_.end(),
                       scopes_.begin(), scopes_.end());
}

std::string ScopeSet::ToOAuthString() const {
  return absl::StrJoin(scopes_, " ");
}

absl::Status ValidateScope(absl::string_view scope, absl::string_view field) {
  if (scope.empty() || scope.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a scope must be 1 to 64 characters long"));
  }
  for (char c : scope) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '-' && c != '.' && c != ':') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": scope has a character outside [A-Za-z0-9_.:-]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace treezor::broker
