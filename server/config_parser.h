// Config parsing: the JSON text of a config file into a v1::BrokerConfig
// (schema: proto/treezor/broker/v1/config.proto), strictly. Unknown fields,
// the proto's snake_case names, values of the wrong JSON type and duplicate
// keys are errors, each naming its JSON field path:
//   config: tenants[1].upstreamTls: unknown field "crtFile"
//   config: upstream.maxConcurrentRequests: expected an integer, got a string
//
//   absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(json);
//
// Why not protobuf's JSON parser alone: protobuf 3.21 reports paths with
// proto field names in a mixed form ("(tenants[1].upstream_tls) crtFile:
// Cannot find field."), silently accepts a scalar where an array is
// expected, accepts proto field names besides JSON names, and lets a
// duplicate key override the first. So the JSON is first checked against
// the message descriptors, then handed to protobuf.
//
// Values are not validated here: see ValidateConfig (config_validator.h).
// Thread-safety: a pure function.
#ifndef TREEZOR_BROKER_SERVER_CONFIG_PARSER_H_
#define TREEZOR_BROKER_SERVER_CONFIG_PARSER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// INVALID_ARGUMENT listing every problem, one a line, each starting with
// "<source>: " (LoadConfigFile passes the file's path).
absl::StatusOr<v1::BrokerConfig> ParseConfigJson(
    absl::string_view json, absl::string_view source = "config");

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CONFIG_PARSER_H_
