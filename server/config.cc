#include "server/config.h"

#include "absl/strings/str_cat.h"
#include "server/config_problems.h"
#include "server/secret_reader.h"

namespace treezor::broker {

absl::StatusOr<v1::BrokerConfig> LoadConfigFile(const std::string& path) {
  absl::StatusOr<Secret> json = ReadWholeFile(path);
  if (!json.ok()) {
    return absl::Status(json.status().code(),
                        absl::StrCat("config file: ", json.status().message()));
  }
  absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(json->view(), path);
  if (!config.ok()) return config.status();
  internal::ConfigProblems problems;
  internal::ValidateAllSections(*config, problems);
  if (!problems.empty()) return problems.ToStatus(path);
  return config;
}

}  // namespace treezor::broker
