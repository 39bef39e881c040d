// Config validation: everything that can be checked before start-up (see
// docs/CONFIG.md): required fields, shapes and ranges, cross references, and
// that the files named are readable and secret files / variables non-empty.
//
//   std::vector<ConfigWarning> warnings;
//   absl::Status status = ValidateConfig(config, &warnings);
//   // INVALID_ARGUMENT, one problem a line:
//   //   config: tenants[0].clientSecretFile: cannot read "/run/s/x": ...
//
// Problems refuse the config; warnings (config_warning.h) accept it but are
// worth an operator's attention.
//
// Every problem is reported, each naming its JSON field path; messages name
// secret files and variables, never their content. Cross-field rules compare
// the resolved settings (ResolveSettings), so a default counts as what it
// is, and blame the field the user wrote.
//
// The checks are split by section: config_validator.cc (addresses, server
// TLS, shutdown, and the order of the sections), config_validator_tenants.cc,
// config_validator_callers.cc (callers and admins), config_validator_tuning.cc
// (renewal, upstream).
//
// Thread-safety: thread-safe (reads files and the environment, nothing else).
#ifndef TREEZOR_BROKER_SERVER_CONFIG_VALIDATOR_H_
#define TREEZOR_BROKER_SERVER_CONFIG_VALIDATOR_H_

#include <vector>

#include "absl/status/status.h"
#include "server/config_problems.h"
#include "server/config_warning.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// OK, or INVALID_ARGUMENT listing every problem found, one a line, each
// starting with "config: ". When `warnings` is not null it is set to the
// warnings found, whether the config is refused or not.
absl::Status ValidateConfig(const v1::BrokerConfig& config,
                            std::vector<ConfigWarning>* warnings = nullptr);

namespace internal {

// Every section below, in the order problems are reported.
void ValidateAllSections(const v1::BrokerConfig& config,
                         ConfigProblems& problems);

// The sections; each adds what it finds to `problems`.
void ValidateListenAddresses(const v1::BrokerConfig& config,
                             ConfigProblems& problems);
void ValidateServerTls(const v1::BrokerConfig& config,
                       ConfigProblems& problems);
void ValidateTenants(const v1::BrokerConfig& config, ConfigProblems& problems);
void ValidateCallers(const v1::BrokerConfig& config, ConfigProblems& problems);
void ValidateAdmins(const v1::BrokerConfig& config, ConfigProblems& problems);
void ValidateRenewal(const v1::BrokerConfig& config, ConfigProblems& problems);
void ValidateUpstream(const v1::BrokerConfig& config,
                      ConfigProblems& problems);
void ValidateShutdown(const v1::BrokerConfig& config,
                      ConfigProblems& problems);
void ValidateLimits(const v1::BrokerConfig& config, ConfigProblems& problems);

}  // namespace internal
}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CONFIG_VALIDATOR_H_
