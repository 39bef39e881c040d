// The `tenants` section of config validation (see config_validator.h).
#include "server/config_validator.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/base_url.h"
#include "server/config_field_checks.h"
#include "server/quote.h"
#include "server/scope_set.h"
#include "server/secret_reader.h"

namespace treezor::broker::internal {
namespace {

bool IsTenantName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return absl::c_all_of(name, [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
           c == '_' || c == '-';
  });
}

bool IsEnvVarName(absl::string_view name) {
  if (name.empty() ||
      absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return absl::c_all_of(name, [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// A secret of tenant `path`, named by `field` (its file, empty when the
// secret comes from elsewhere or is missing): the file's path must be
// absolute; the secret is read exactly as a token request reads it
// (server/secret_reader.h, whose messages name the field); the file must be
// private.
void RequireSecret(const std::string& path, absl::string_view field,
                   const std::string& file,
                   absl::FunctionRef<absl::StatusOr<Secret>()> read,
                   ConfigProblems& problems) {
  if (!file.empty() &&
      !RequireAbsolutePath(Field(path, field), file, problems)) {
    return;
  }
  const absl::StatusOr<Secret> secret = read();
  problems.AddWithin(path, secret.status());
  if (secret.ok() && !file.empty()) {
    CheckFilePermissions(Field(path, field), file, FileKind::kPrivate,
                         problems);
  }
}

void ValidateTenant(const v1::Tenant& t, const std::string& path,
                    ConfigProblems& problems) {
  if (t.base_url().empty()) {
    problems.Add(Field(path, "baseUrl"), "required");
  } else if (std::optional<std::string> problem =
                 BaseUrlProblem(t.base_url())) {
    problems.Add(Field(path, "baseUrl"), *problem);
  }

  const bool known_grant = t.grant_type().empty() ||
                           t.grant_type() == "client_credentials" ||
                           t.grant_type() == "password";
  if (!known_grant) {
    problems.Add(Field(path, "grantType"),
                 absl::StrCat(Quote(t.grant_type()),
                              " must be \"client_credentials\" (the "
                              "default) or \"password\""));
  }
  if (t.client_id().empty()) problems.Add(Field(path, "clientId"), "required");

  if (!t.client_secret_file().empty() && !t.client_secret_env().empty()) {
    problems.Add(Field(path, "clientSecretEnv"),
                 "set only one of clientSecretFile and clientSecretEnv");
  } else if (t.client_secret_file().empty() && !t.client_secret_env().empty() &&
             !IsEnvVarName(t.client_secret_env())) {
    problems.Add(Field(path, "clientSecretEnv"),
                 absl::StrCat(Quote(t.client_secret_env()),
                              " is not an environment variable name"));
  } else {
    // Also "clientSecretFile: required (or clientSecretEnv)" when neither
    // is set.
    RequireSecret(path, "clientSecretFile", t.client_secret_file(),
                  [&] { return ReadClientSecret(t); }, problems);
  }

  if (t.grant_type() == "password") {
    for (const auto& [field, file] :
         {std::pair<const char*, const std::string&>{"usernameFile",
                                                     t.username_file()},
          std::pair<const char*, const std::string&>{"passwordFile",
                                                     t.password_file()}}) {
      RequireSecret(path, field, file,
                    [&, field = field, &file = file] {
                      return ReadSecretFile(field, file);
                    },
                    problems);
    }
  } else if (known_grant) {
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string&>{"usernameFile",
                                                     t.username_file()},
          std::pair<const char*, const std::string&>{"passwordFile",
                                                     t.password_file()}}) {
      if (!value.empty()) {
        problems.Add(Field(path, name), "only for grantType \"password\"");
      }
    }
  }

  ValidateScopes(Field(path, "defaultScopes"), t.default_scopes(), problems);
  ValidateScopes(Field(path, "allowedScopes"), t.allowed_scopes(), problems);
  if (!t.allowed_scopes().empty() && t.default_scopes().empty()) {
    // Not a problem: refusing it would stop today's valid configs from
    // starting after an upgrade. Without defaultScopes, such a tenant never
    // fetches without a `scope` (issue 10 item 1): Policy refuses requests
    // naming no scope, and nothing is fetched at start-up.
    problems.AddWarning(
        Field(path, "defaultScopes"),
        absl::StrCat("tenant ", Quote(t.name()),
                     " has allowedScopes but no defaultScopes: requests "
                     "naming no scope are refused (PERMISSION_DENIED) and "
                     "nothing is fetched for it at start-up; set "
                     "defaultScopes to serve such requests"));
  }
  if (!t.allowed_scopes().empty()) {
    const ScopeSet allowed = ScopeSet::FromList(t.allowed_scopes());
    for (int i = 0; i < t.default_scopes_size(); ++i) {
      if (!allowed.Contains(t.default_scopes(i))) {
        problems.Add(Index(Field(path, "defaultScopes"), i),
                     absl::StrCat(Quote(t.default_scopes(i)),
                                  " is not in allowedScopes"));
      }
    }
  }

  const std::string tls = Field(path, "upstreamTls");
  if (t.upstream_tls().cert_file().empty()) {
    problems.Add(Field(tls, "certFile"),
                 "required (Treezor requires mutual TLS)");
  } else {
    RequireFile(Field(tls, "certFile"), t.upstream_tls().cert_file(),
                FileKind::kPublic, problems);
  }
  if (t.upstream_tls().key_file().empty()) {
    problems.Add(Field(tls, "keyFile"),
                 "required (Treezor requires mutual TLS)");
  } else {
    RequireFile(Field(tls, "keyFile"), t.upstream_tls().key_file(),
                FileKind::kPrivate, problems);
  }
  if (!t.upstream_tls().ca_file().empty()) {
    RequireFile(Field(tls, "caFile"), t.upstream_tls().ca_file(),
                FileKind::kPublic, problems);
  }

  const std::string& encoding = t.request_encoding();
  if (!encoding.empty() && encoding != "form" && encoding != "multipart" &&
      encoding != "json") {
    problems.Add(Field(path, "requestEncoding"),
                 absl::StrCat(Quote(encoding),
                              " must be \"form\" (the default), "
                              "\"multipart\" or \"json\""));
  }
}

}  // namespace

void ValidateTenants(const v1::BrokerConfig& config, ConfigProblems& problems) {
  if (config.tenants().empty()) {
    problems.Add("tenants", "at least one tenant is required");
  }
  absl::flat_hash_map<std::string, int> first_index;
  for (int i = 0; i < config.tenants_size(); ++i) {
    const v1::Tenant& t = config.tenants(i);
    const std::string path = Index("tenants", i);
    if (!IsTenantName(t.name())) {
      problems.Add(Field(path, "name"),
                   t.name().empty() ? "required"
                                    : absl::StrCat(Quote(t.name()),
                                                   " must be 1 to 64 of "
                                                   "[A-Za-z0-9._-]"));
    } else if (auto [it, inserted] = first_index.try_emplace(t.name(), i);
               !inserted) {
      problems.Add(Field(path, "name"),
                   absl::StrCat(Quote(t.name()), " is already the name of ",
                                Index("tenants", it->second)));
    }
    ValidateTenant(t, path, problems);
  }
}

}  // namespace treezor::broker::internal
