// The `callers` and `admins` sections of config validation (see
// config_validator.h).
#include "server/config_validator.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/config_field_checks.h"
#include "server/quote.h"

namespace treezor::broker::internal {

void ValidateCallers(const v1::BrokerConfig& config, ConfigProblems& problems) {
  absl::flat_hash_map<std::string, int> tenants;
  for (const v1::Tenant& t : config.tenants()) tenants.emplace(t.name(), 0);
  absl::flat_hash_map<std::string, int> first_index;
  for (int i = 0; i < config.callers_size(); ++i) {
    const v1::Caller& c = config.callers(i);
    const std::string path = Index("callers", i);
    if (c.identity().empty()) {
      problems.Add(Field(path, "identity"), "required");
    } else if (auto [it, inserted] = first_index.try_emplace(c.identity(), i);
               !inserted) {
      problems.Add(Field(path, "identity"),
                   absl::StrCat(Quote(c.identity()), " is already listed in ",
                                Index("callers", it->second),
                                ": merge the two entries"));
    } else {
      ValidateIdentity(Field(path, "identity"), c.identity(), problems);
    }
    if (c.tenants().empty()) {
      problems.Add(Field(path, "tenants"), "at least one tenant is required");
    }
    for (int j = 0; j < c.tenants_size(); ++j) {
      if (!tenants.contains(c.tenants(j))) {
        problems.Add(Index(Field(path, "tenants"), j),
                     absl::StrCat("no tenant is named ", Quote(c.tenants(j))));
      }
    }
    ValidateScopes(Field(path, "scopes"), c.scopes(), problems);
  }
}

void ValidateAdmins(const v1::BrokerConfig& config, ConfigProblems& problems) {
  for (int i = 0; i < config.admins_size(); ++i) {
    const std::string path = Field(Index("admins", i), "identity");
    if (config.admins(i).identity().empty()) {
      problems.Add(path, "required");
    } else {
      ValidateIdentity(path, config.admins(i).identity(), problems);
    }
  }
}

}  // namespace treezor::broker::internal
