// A listen address of the config (`listenAddress`, `healthListenAddress`,
// `metricsListenAddress`): "host:port" or "[v6]:port", parsed strictly so
// that a typo is a config error rather than a gRPC bind failure later.
//
//   absl::StatusOr<HostPort> a = ParseHostPort("0.0.0.0:8443");
//   if (SameBinding(*a, *b)) ...  // the two listeners would collide
//
// Thread-safety: pure functions.
#ifndef TREEZOR_BROKER_SERVER_HOST_PORT_H_
#define TREEZOR_BROKER_SERVER_HOST_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace treezor::broker {

struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};

// "host:port" or "[v6]:port"; port 0 asks the kernel for a free port. Host
// names are letters, digits, '.', '-', '_'. INVALID_ARGUMENT
// `"<address>" is not host:port (<why>; e.g. ...)`.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address);

// True if binding both would collide: the same port (not 0) on the same host,
// or on a wildcard host ("0.0.0.0", "::") and any other.
bool SameBinding(const HostPort& a, const HostPort& b);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_HOST_PORT_H_
