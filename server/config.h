// The broker's configuration file (schema: proto/treezor/broker/v1/config.proto):
// LoadConfigFile, the entry point that reads, parses and validates it, and
// the pieces it is made of, each in its own file:
//   config_parser.h      ParseConfigJson: JSON text -> BrokerConfig, strictly
//   config_validator.h   ValidateConfig: every check before start-up
//   settings_resolver.h  ResolveSettings: the effective settings, defaults
//                        filled in (server/settings.h, where every default is)
//
//   std::vector<ConfigWarning> warnings;
//   absl::StatusOr<v1::BrokerConfig> config = LoadConfigFile(path, &warnings);
//   for (const ConfigWarning& w : warnings) Log(w);  // accepted, worth saying
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
// Thread-safety: all functions are thread-safe (validation reads files and
// the environment, nothing else).
#ifndef TREEZOR_BROKER_SERVER_CONFIG_H_
#define TREEZOR_BROKER_SERVER_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config_parser.h"
#include "server/config_validator.h"
#include "server/config_warning.h"
#include "server/settings_resolver.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// Reads, parses and validates `path`. A read error is NOT_FOUND /
// PERMISSION_DENIED / INVALID_ARGUMENT naming the path; every parse or
// validation problem starts with the path. A config file that its group or
// others may write is refused: whoever can write it decides who gets tokens.
// When `warnings` is not null it is set to the validation's warnings (none
// when the file cannot be read or parsed), whether the config is refused or
// not.
absl::StatusOr<v1::BrokerConfig> LoadConfigFile(
    const std::string& path, std::vector<ConfigWarning>* warnings = nullptr);

// One "config warning" log line per warning (field, warning, config path):
// at start-up and at every reload, so that an operator sees them where the
// broker runs, not only in --check-config. Warnings never name a secret.
void LogConfigWarnings(const std::string& path,
                       const std::vector<ConfigWarning>& warnings);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CONFIG_H_
