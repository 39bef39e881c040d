// What config parsing and validation found wrong, each problem naming its
// JSON field path in lowerCamelCase (what the user wrote), e.g.
//   tenants[1].upstreamTls: unknown field "crtFile"
// and the helpers that build those paths. Every problem is collected, so the
// user sees them all at once, one a line.
//
//   internal::ConfigProblems problems;
//   problems.Add(internal::Field(internal::Index("tenants", 0), "clientId"),
//                "required");
//   return problems.ToStatus("config");  // "config: tenants[0].clientId: ..."
//
// Internal to config parsing and validation (server/config_*.cc).
// Thread-safety: a ConfigProblems is used by one thread.
#ifndef TREEZOR_BROKER_SERVER_CONFIG_PROBLEMS_H_
#define TREEZOR_BROKER_SERVER_CONFIG_PROBLEMS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace treezor::broker::internal {

// Where errors say they come from when no file is involved.
inline constexpr absl::string_view kConfigSource = "config";

class ConfigProblems {
 public:
  // `path` is a JSON field path ("tenants[1].upstreamTls"), empty for the
  // document itself.
  void Add(absl::string_view path, absl::string_view problem);
  // A status whose message already starts with the field path (ValidateScope).
  void Add(const absl::Status& status);
  // A status whose message starts with a field name relative to `parent`
  // (the secret reader's "clientSecretFile: ...").
  void AddWithin(absl::string_view parent, const absl::Status& status);

  bool empty() const { return lines_.empty(); }

  // INVALID_ARGUMENT, each line prefixed with "<source>: "; OK when empty.
  absl::Status ToStatus(absl::string_view source) const;

 private:
  std::vector<std::string> lines_;
};

// "parent.name", or "name" at the top level.
std::string Field(absl::string_view parent, absl::string_view name);
// "parent[i]".
std::string Index(absl::string_view parent, size_t i);

}  // namespace treezor::broker::internal

#endif  // TREEZOR_BROKER_SERVER_CONFIG_PROBLEMS_H_
