// A config warning: something the broker accepts but an operator should fix
// or know about — a secret file readable by others, a tenant whose requests
// without scopes will be refused. Config validation reports warnings beside
// its problems; problems refuse the config, warnings never do.
//
//   std::vector<ConfigWarning> warnings;
//   absl::StatusOr<v1::BrokerConfig> config = LoadConfigFile(path, &warnings);
//   for (const ConfigWarning& w : warnings) {
//     LogWarning("config warning", {{"field", w.field}, {"warning", w.message}});
//   }
//
// `--check-config` prints each as "<file>: warning: <field>: <message>" on
// stderr and still exits 0. Like problems, warnings name files and
// variables, never a secret.
#ifndef TREEZOR_BROKER_SERVER_CONFIG_WARNING_H_
#define TREEZOR_BROKER_SERVER_CONFIG_WARNING_H_

#include <string>

#include "absl/strings/str_cat.h"

namespace treezor::broker {

struct ConfigWarning {
  // The JSON field path, lowerCamelCase: "tenants[0].clientSecretFile".
  std::string field;
  // What is wrong and what it means, e.g. `"/run/s/acme" is readable by
  // others (mode 0644): ...`.
  std::string message;

  // "<field>: <message>".
  std::string ToString() const { return absl::StrCat(field, ": ", message); }

  friend bool operator==(const ConfigWarning&, const ConfigWarning&) = default;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CONFIG_WARNING_H_
