// The gRPC server arguments of the broker's two gRPC ports, from the
// `limits` settings (server/settings.h, where the defaults are), so that no
// peer — authenticated or not — can make a port hold more than they allow.
//
//   grpc::ServerBuilder builder;
//   ApplyServerOptions(MtlsServerOptions(settings.limits), builder);
//
// The mTLS port (every service): a TLS handshake (and the HTTP/2 preface
// after it) must finish within handshake_timeout; a ResourceQuota caps the
// memory of its connections and streams; at most max_concurrent_streams
// streams per connection (more wait client-side); every connection is sent
// GOAWAY after max_connection_age (±10 % jitter, gRPC's) and closed
// max_connection_age_grace later, so a rotated client CA or an expired or
// revoked caller certificate reaches every caller within age + grace; a
// connection without a call for max_connection_idle is closed; pings without
// calls are refused and pings with calls more often than min_ping_interval
// count as strikes (the third strike is answered with GOAWAY
// "too_many_pings").
//
// The plaintext probe port (health Check only, see health_service.h): the
// same handshake timeout and keepalive enforcement, its own small
// ResourceQuota and stream cap, a short idle timeout, and requests of at most
// kHealthMaxRequestBytes. No server reflection there.
//
// gRPC 1.51 has no cap on the number of connections, and its ResourceQuota
// neither refuses connections nor counts a pending TLS handshake. So each
// port also carries its connection caps (`connections`, enforced by the
// broker's own accept loop, external_listener.h, which resets a connection
// past them before gRPC sees it), with the config fields that set them for
// the refusal's log line. Within the caps: a connection that has not
// finished its handshake is dropped after handshake_timeout; an established
// one without calls after the idle timeout; one with calls after max age +
// grace; and the ResourceQuota, once the memory gRPC accounts to the port
// (connection and stream buffers) reaches the cap, makes gRPC shrink
// flow-control windows and reclaim: connections without a stream are sent
// GOAWAY, then streams are cancelled (RESOURCE_EXHAUSTED "Buffers full").
//
// Thread-safety: pure functions.
#ifndef TREEZOR_BROKER_SERVER_SERVER_OPTIONS_H_
#define TREEZOR_BROKER_SERVER_SERVER_OPTIONS_H_

#include <cstdint>
#include <map>
#include <string>

#include "grpcpp/server_builder.h"
#include "server/connection_admission.h"
#include "server/settings.h"

namespace treezor::broker {

// A health Check request carries a service name (ours are short).
inline constexpr int kHealthMaxRequestBytes = 1024;

struct GrpcServerOptions {
  // Integer channel arguments (GRPC_ARG_...), durations in milliseconds.
  std::map<std::string, int> int_args;
  // Name and size of the port's own gRPC ResourceQuota.
  std::string quota_name;
  int64_t memory_bytes = 0;
  // Whether server reflection is served.
  bool reflection = false;
  // Open connections the port admits, and the config fields that set them.
  ConnectionAdmission::Limits connections;
  std::string max_connections_field;
  std::string max_connections_per_peer_field;
};

GrpcServerOptions MtlsServerOptions(const LimitsSettings& limits);
GrpcServerOptions HealthServerOptions(const LimitsSettings& limits);

// Sets `options` on `builder`: the channel arguments, a ResourceQuota, and
// server reflection on or off (whatever any global plugin registration says).
void ApplyServerOptions(const GrpcServerOptions& options,
                        grpc::ServerBuilder& builder);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SERVER_OPTIONS_H_
