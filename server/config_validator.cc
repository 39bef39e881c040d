#include "server/config_validator.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/proto_time.h"
#include "server/config_field_checks.h"
#include "server/host_port.h"
#include "server/quote.h"

namespace treezor::broker {

absl::Status ValidateConfig(const v1::BrokerConfig& config,
                            std::vector<ConfigWarning>* warnings) {
  internal::ConfigProblems problems;
  internal::ValidateAllSections(config, problems);
  if (warnings != nullptr) *warnings = problems.warnings();
  return problems.ToStatus(internal::kConfigSource);
}

namespace internal {

void ValidateAllSections(const v1::BrokerConfig& config,
                         ConfigProblems& problems) {
  ValidateListenAddresses(config, problems);
  ValidateServerTls(config, problems);
  ValidateTenants(config, problems);
  ValidateCallers(config, problems);
  ValidateAdmins(config, problems);
  ValidateRenewal(config, problems);
  ValidateUpstream(config, problems);
  ValidateShutdown(config, problems);
  ValidateLimits(config, problems);
}

void ValidateListenAddresses(const v1::BrokerConfig& config,
                             ConfigProblems& problems) {
  struct Address {
    const char* path;
    const std::string& value;
    HostPort parsed;
  };
  std::vector<Address> valid;
  for (Address a :
       {Address{"listenAddress", config.listen_address(), {}},
        Address{"healthListenAddress", config.health_listen_address(), {}},
        Address{"metricsListenAddress", config.metrics_listen_address(), {}}}) {
    if (a.value.empty()) {
      if (a.path == absl::string_view("listenAddress")) {
        problems.Add(a.path, "required");
      }
      continue;
    }
    absl::StatusOr<HostPort> parsed = ParseHostPort(a.value);
    if (!parsed.ok()) {
      problems.Add(a.path, parsed.status().message());
      continue;
    }
    for (const Address& earlier : valid) {
      if (SameBinding(earlier.parsed, *parsed)) {
        problems.Add(
            a.path,
            absl::StrCat(Quote(a.value), " overlaps ", earlier.path, " ",
                         Quote(earlier.value), ": use another port"));
      }
    }
    a.parsed = *std::move(parsed);
    valid.push_back(a);
  }
}

void ValidateServerTls(const v1::BrokerConfig& config,
                       ConfigProblems& problems) {
  const v1::ServerTls& tls = config.server_tls();
  RequireFile("serverTls.certFile", tls.cert_file(), FileKind::kPublic,
              problems);
  RequireFile("serverTls.keyFile", tls.key_file(), FileKind::kPrivate,
              problems);
  RequireFile("serverTls.clientCaFile", tls.client_ca_file(),
              FileKind::kPublic, problems);
  if (tls.has_refresh_interval()) {
    RequirePositive("serverTls.refreshInterval", tls.refresh_interval(),
                    problems);
  }
}

void ValidateShutdown(const v1::BrokerConfig& config,
                      ConfigProblems& problems) {
  if (config.has_shutdown_grace_period() &&
      FromProtoDuration(config.shutdown_grace_period()) <
          absl::ZeroDuration()) {
    problems.Add("shutdownGracePeriod",
                 absl::StrCat("must not be negative, got ",
                              absl::FormatDuration(FromProtoDuration(
                                  config.shutdown_grace_period()))));
  }
}

}  // namespace internal
}  // namespace treezor::broker
