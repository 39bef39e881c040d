// What config parsing and validation found wrong — problems, which refuse the
// config, and warnings (config_warning.h), which do not — each naming its
// JSON field path in lowerCamelCase (what the user wrote), e.g.
//   tenants[1].upstreamTls: unknown field "crtFile"
// and the helpers that build those paths. Everything is collected, so the
// user sees every problem at once, one a line.
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
#include "server/config_warning.h"

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

  // Accepted, but worth saying: see config_warning.h.
  void AddWarning(absl::string_view path, absl::string_view warning);

  // True if no problem was found (warnings do not count).
  bool empty() const { return lines_.empty(); }
  const std::vector<ConfigWarning>& warnings() const { return warnings_; }

  // INVALID_ARGUMENT, each line prefixed with "<source>: "; OK when empty.
  absl::Status ToStatus(absl::string_view source) const;

 private:
  std::vector<std::string> lines_;
  std::vector<ConfigWarning> warnings_;
};

// "parent.name", or "name" at the top level.
std::string Field(absl::string_view parent, absl::string_view name);
// "parent[i]".
std::string Index(absl::string_view parent, size_t i);

}  // namespace treezor::broker::internal

#endif  // TREEZOR_BROKER_SERVER_CONFIG_PROBLEMS_H_
