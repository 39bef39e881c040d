// Fuzz target: scope validation and canonical scope sets (server/scope_set.h).
// The input is split on ' ' (empty pieces kept) into candidate scopes, as a
// space-separated OAuth `scope` string or a request's scope list would give
// them. Invariants, for any input:
//  - ValidateScope accepts exactly 1..64 characters of [A-Za-z0-9_.:-], and
//    its error names the field;
//  - ScopeSet::FromList is sorted, without duplicates, contains every
//    candidate and nothing else, does not depend on the candidates' order,
//    and is idempotent (FromList of its scopes is itself, with the same hash);
//  - for valid scopes, ToOAuthString round-trips through splitting on ' ';
//  - subsets: the valid scopes' set is a subset of all candidates' set.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/scope_set.h"
#include "tests/fuzz/fuzz_check.h"

namespace treezor::broker {
namespace {

// The rule ValidateScope documents, written independently.
bool IsValidScope(absl::string_view scope) {
  if (scope.empty() || scope.size() > 64) return false;
  return std::all_of(scope.begin(), scope.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           c == '.' || c == ':' || c == '-';
  });
}

std::string Shown(const std::vector<std::string>& scopes) {
  return absl::StrCat(
      "[", absl::StrJoin(scopes, ", ",
                         [](std::string* out, const std::string& s) {
                           absl::StrAppend(out, "\"", absl::CHexEscape(s),
                                           "\"");
                         }),
      "]");
}

void CheckScopeSet(const std::vector<std::string>& candidates,
                   const ScopeSet& set) {
  const std::vector<std::string>& scopes = set.scopes();
  TZB_FUZZ_CHECK(std::adjacent_find(scopes.begin(), scopes.end(),
                                    [](const std::string& a,
                                       const std::string& b) {
                                      return !(a < b);
                                    }) == scopes.end(),
                 absl::StrCat("not strictly sorted: ", Shown(scopes)));
  for (const std::string& c : candidates) {
    TZB_FUZZ_CHECK(set.Contains(c), absl::StrCat("lost \"", absl::CHexEscape(c),
                                                 "\": ", Shown(scopes)));
  }
  for (const std::string& s : scopes) {
    TZB_FUZZ_CHECK(
        std::find(candidates.begin(), candidates.end(), s) != candidates.end(),
        absl::StrCat("invented \"", absl::CHexEscape(s), "\""));
  }
  const ScopeSet again = ScopeSet::FromList(scopes);
  TZB_FUZZ_CHECK(again == set, absl::StrCat("not idempotent: ", Shown(scopes),
                                            " became ", Shown(again.scopes())));
  TZB_FUZZ_CHECK(absl::HashOf(again) == absl::HashOf(set),
                 "equal sets hash differently");
  const std::vector<std::string> reversed(candidates.rbegin(),
                                          candidates.rend());
  TZB_FUZZ_CHECK(ScopeSet::FromList(reversed) == set,
                 "the candidates' order changed the set");
  TZB_FUZZ_CHECK(set.IsSubsetOf(set), "a set is not a subset of itself");
  TZB_FUZZ_CHECK(ScopeSet().IsSubsetOf(set), "{} is not a subset");
}

}  // namespace
}  // namespace treezor::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using treezor::broker::ScopeSet;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> candidates = absl::StrSplit(input, ' ');

  std::vector<std::string> valid;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::string field = absl::StrCat("scopes[", i, "]");
    const absl::Status status =
        treezor::broker::ValidateScope(candidates[i], field);
    const bool expected = treezor::broker::IsValidScope(candidates[i]);
    TZB_FUZZ_CHECK(status.ok() == expected,
                   absl::StrCat("\"", absl::CHexEscape(candidates[i]),
                                "\": ", status.ToString()));
    if (status.ok()) {
      valid.push_back(candidates[i]);
    } else {
      TZB_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
                     status.ToString());
      TZB_FUZZ_CHECK(absl::StartsWith(status.message(), field + ": "),
                     status.ToString());
    }
  }

  const ScopeSet all = ScopeSet::FromList(candidates);
  treezor::broker::CheckScopeSet(candidates, all);
  const ScopeSet valid_set = ScopeSet::FromList(valid);
  treezor::broker::CheckScopeSet(valid, valid_set);
  TZB_FUZZ_CHECK(valid_set.IsSubsetOf(all), "valid scopes not a subset of all");

  // Valid scopes have no ' ', so the OAuth string splits back into the set.
  const std::string oauth = valid_set.ToOAuthString();
  std::vector<std::string> split;  // "" is the empty set, not {""}
  if (!oauth.empty()) split = absl::StrSplit(oauth, ' ');
  TZB_FUZZ_CHECK(split == valid_set.scopes(),
                 absl::StrCat("\"", absl::CHexEscape(oauth),
                              "\" does not split back into ",
                              treezor::broker::Shown(valid_set.scopes())));
  return 0;
}
