#include "server/config.h"

#include "absl/strings/str_cat.h"
#include "server/config_field_checks.h"
#include "server/config_problems.h"
#include "server/logging.h"
#include "server/secret_reader.h"

namespace treezor::broker {

absl::StatusOr<v1::BrokerConfig> LoadConfigFile(
    const std::string& path, std::vector<ConfigWarning>* warnings) {
  if (warnings != nullptr) warnings->clear();
  absl::StatusOr<Secret> json = ReadWholeFile(path);
  if (!json.ok()) {
    return absl::Status(json.status().code(),
                        absl::StrCat("config file: ", json.status().message()));
  }
  internal::ConfigProblems problems;
  internal::CheckFilePermissions("", path, internal::FileKind::kPublic,
                                 problems);
  absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(json->view(), path);
  if (!config.ok()) {
    if (problems.empty()) return config.status();
    return absl::InvalidArgumentError(absl::StrCat(
        problems.ToStatus(path).message(), "\n", config.status().message()));
  }
  internal::ValidateAllSections(*config, problems);
  if (warnings != nullptr) *warnings = problems.warnings();
  if (!problems.empty()) return problems.ToStatus(path);
  return config;
}

void LogConfigWarnings(const std::string& path,
                       const std::vector<ConfigWarning>& warnings) {
  for (const ConfigWarning& w : warnings) {
    LogWarning("config warning",
               {{"config", path}, {"field", w.field}, {"warning", w.message}});
  }
}

}  // namespace treezor::broker
