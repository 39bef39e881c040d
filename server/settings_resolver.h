// Settings resolution: the effective BrokerSettings (server/settings.h) of a
// config — the config's values where present, the defaults (BrokerSettings'
// member initialisers) elsewhere. An absent field, or an unset `optional`
// scalar, takes the default; a present one is taken as written.
//
//   BrokerSettings settings = ResolveSettings(config);
//
// Resolved once, at start-up; validation's cross-field checks compare the
// same resolved values, so a default is judged as what it is.
//
// Thread-safety: a pure function.
#ifndef TREEZOR_BROKER_SERVER_SETTINGS_RESOLVER_H_
#define TREEZOR_BROKER_SERVER_SETTINGS_RESOLVER_H_

#include "server/settings.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// Assumes a validated config (ValidateConfig); does not check ranges.
BrokerSettings ResolveSettings(const v1::BrokerConfig& config);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SETTINGS_RESOLVER_H_
