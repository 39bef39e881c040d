// Loading and validating the broker's configuration file (schema:
// proto/treezor/broker/v1/config.proto), and the effective settings resolved
// from it (server/settings.h, where every default is).
//
//   absl::StatusOr<v1::BrokerConfig> config = LoadConfigFile(path);
//   if (!config.ok()) return config.status();   // every problem, one a line
//   BrokerSettings settings = ResolveSettings(*config);
//
// Error messages have one problem per line, each naming where it is and the
// JSON field path in lowerCamelCase (what the user wrote), e.g.
//   config: tenants[1].upstreamTls: unknown field "crtFile"
//   config: tenants[0].clientSecretFile: cannot read "/run/s/x": No such ...
// LoadConfigFile puts the file's path where `config` stands. Messages name
// secret files and variables, never their content.
//
// Defaults live in one place: BrokerSettings' member initialisers
// (server/settings.h). An absent field (or an unset `optional` scalar) takes
// the default; a present one is validated as written.
//
// Thread-safety: all functions are thread-safe (ValidateConfig reads files
// and the environment, nothing else).
#ifndef TREEZOR_BROKER_SERVER_CONFIG_H_
#define TREEZOR_BROKER_SERVER_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/settings.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// Parses the JSON text of a config file. Unknown fields, values of the wrong
// JSON type, and duplicate keys are errors (INVALID_ARGUMENT). Does not
// validate values: see ValidateConfig.
absl::StatusOr<v1::BrokerConfig> ParseConfigJson(absl::string_view json);

// Checks everything that can be checked before start-up (see docs/CONFIG.md):
// required fields, shapes and ranges, cross references, and that the files
// named are readable and secret files / variables non-empty. Returns OK or
// INVALID_ARGUMENT listing every problem found, one a line.
absl::Status ValidateConfig(const v1::BrokerConfig& config);

// Reads, parses and validates `path`. A read error is NOT_FOUND /
// PERMISSION_DENIED / INVALID_ARGUMENT naming the path.
absl::StatusOr<v1::BrokerConfig> LoadConfigFile(const std::string& path);

// The effective settings: the config's values where present, the defaults
// elsewhere. Resolved once, at start-up; ValidateConfig checks the same
// resolved values. Assumes a validated config.
BrokerSettings ResolveSettings(const v1::BrokerConfig& config);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CONFIG_H_
