// The `limits` section of config validation (see config_validator.h): what
// any peer can make the broker hold (issue 11). Each field, when set, must lie
// in a documented range (docs/CONFIG.md, "Limits"); the ranges are wide
// enough for any sane deployment and narrow enough that no value turns a
// limit off or makes the broker unusable.
#include "server/config_validator.h"

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "server/config_field_checks.h"

namespace treezor::broker::internal {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

// --- The mTLS port.
// Below 100ms a TLS 1.3 handshake over a slow network fails; above 60s a
// half-open handshake holds its memory for as long as gRPC's own default.
constexpr absl::Duration kMinHandshakeTimeout = absl::Milliseconds(100);
constexpr absl::Duration kMaxHandshakeTimeout = absl::Seconds(60);
// Below 16 MiB a handful of connections (gRPC reserves buffers per
// connection and stream) exhausts the quota; above 4 GiB the cap no longer
// protects any container the chart would run in.
constexpr int64_t kMinMemoryBytes = 16 * kMiB;
constexpr int64_t kMaxMemoryBytes = 4 * kGiB;
// Envoy's edge default is 100; beyond 1000 one connection can pile up what
// the quota is meant to spread over many.
constexpr int64_t kMaxConcurrentStreams = 1000;
// Connections are recycled so that a rotated CA or an expired certificate
// reaches every caller: not more often than every second (each new
// connection is a full mTLS handshake), and at least once a day.
constexpr absl::Duration kMinConnectionAge = absl::Seconds(1);
constexpr absl::Duration kMaxConnectionAge = absl::Hours(24);
// Calls on an aged connection may finish for up to an hour; 0 ends them at
// once (clients reconnect).
constexpr absl::Duration kMaxConnectionAgeGrace = absl::Hours(1);
constexpr absl::Duration kMinConnectionIdle = absl::Seconds(1);
constexpr absl::Duration kMaxConnectionIdle = absl::Hours(24);
// Keepalive enforcement: a floor of 1s still stops a ping flood; above 1h
// ordinary client keepalives (gRPC's own minimum is 10s) would be sent
// GOAWAY.
constexpr absl::Duration kMinPingInterval = absl::Seconds(1);
constexpr absl::Duration kMaxPingInterval = absl::Hours(1);

// --- Per caller identity and per tenant. A watch stream costs ~20 KB, a
// scope set a cache entry, its renewals and metric series: the maxima keep
// one identity or tenant well inside the memory quota and /metrics small.
constexpr int64_t kMaxWatchStreamsPerCaller = 1000;
constexpr int64_t kMaxScopeSetsPerTenant = 1024;
constexpr int64_t kMaxScopeSetsPerCaller = 1024;

// --- The plaintext health port: kubelet's probes need a few KiB and one or
// two streams; anything more is what an anonymous peer could pile up.
constexpr int64_t kMinHealthMemoryBytes = 1 * kMiB;
constexpr int64_t kMaxHealthMemoryBytes = 64 * kMiB;
constexpr int64_t kMaxHealthConcurrentStreams = 100;
constexpr absl::Duration kMinHealthConnectionIdle = absl::Seconds(1);
constexpr absl::Duration kMaxHealthConnectionIdle = absl::Hours(1);

// --- Connections at accept. A connection costs 20-90 KiB outside the
// quota: 100 000 of them is ~9 GiB, past any pod the chart would run; the
// health port needs a handful for kubelet.
constexpr int64_t kMaxConnections = 100000;
constexpr int64_t kMaxHealthConnections = 10000;

}  // namespace

void ValidateLimits(const v1::BrokerConfig& config, ConfigProblems& problems) {
  const v1::Limits& l = config.limits();
  if (l.has_handshake_timeout()) {
    RequireDurationIn("limits.handshakeTimeout", l.handshake_timeout(),
                      kMinHandshakeTimeout, kMaxHandshakeTimeout, problems);
  }
  if (l.has_memory_bytes()) {
    RequireIntIn("limits.memoryBytes", l.memory_bytes(), kMinMemoryBytes,
                 kMaxMemoryBytes, problems);
  }
  if (l.has_max_concurrent_streams()) {
    RequireIntIn("limits.maxConcurrentStreams", l.max_concurrent_streams(), 1,
                 kMaxConcurrentStreams, problems);
  }
  if (l.has_max_connection_age()) {
    RequireDurationIn("limits.maxConnectionAge", l.max_connection_age(),
                      kMinConnectionAge, kMaxConnectionAge, problems);
  }
  if (l.has_max_connection_age_grace()) {
    RequireDurationIn("limits.maxConnectionAgeGrace",
                      l.max_connection_age_grace(), absl::ZeroDuration(),
                      kMaxConnectionAgeGrace, problems);
  }
  if (l.has_max_connection_idle()) {
    RequireDurationIn("limits.maxConnectionIdle", l.max_connection_idle(),
                      kMinConnectionIdle, kMaxConnectionIdle, problems);
  }
  if (l.has_min_ping_interval()) {
    RequireDurationIn("limits.minPingInterval", l.min_ping_interval(),
                      kMinPingInterval, kMaxPingInterval, problems);
  }
  if (l.has_max_watch_streams_per_caller()) {
    RequireIntIn("limits.maxWatchStreamsPerCaller",
                 l.max_watch_streams_per_caller(), 1,
                 kMaxWatchStreamsPerCaller, problems);
  }
  if (l.has_max_scope_sets_per_tenant()) {
    RequireIntIn("limits.maxScopeSetsPerTenant", l.max_scope_sets_per_tenant(),
                 1, kMaxScopeSetsPerTenant, problems);
  }
  if (l.has_max_scope_sets_per_caller()) {
    RequireIntIn("limits.maxScopeSetsPerCaller", l.max_scope_sets_per_caller(),
                 1, kMaxScopeSetsPerCaller, problems);
  }
  if (l.has_health_memory_bytes()) {
    RequireIntIn("limits.healthMemoryBytes", l.health_memory_bytes(),
                 kMinHealthMemoryBytes, kMaxHealthMemoryBytes, problems);
  }
  if (l.has_health_max_concurrent_streams()) {
    RequireIntIn("limits.healthMaxConcurrentStreams",
                 l.health_max_concurrent_streams(), 1,
                 kMaxHealthConcurrentStreams, problems);
  }
  if (l.has_health_max_connection_idle()) {
    RequireDurationIn("limits.healthMaxConnectionIdle",
                      l.health_max_connection_idle(), kMinHealthConnectionIdle,
                      kMaxHealthConnectionIdle, problems);
  }
  if (l.has_max_connections()) {
    RequireIntIn("limits.maxConnections", l.max_connections(), 1,
                 kMaxConnections, problems);
  }
  if (l.has_max_connections_per_peer()) {
    RequireIntIn("limits.maxConnectionsPerPeer", l.max_connections_per_peer(),
                 1, kMaxConnections, problems);
  }
  if (l.has_health_max_connections()) {
    RequireIntIn("limits.healthMaxConnections", l.health_max_connections(), 1,
                 kMaxHealthConnections, problems);
  }
  if (l.has_health_max_connections_per_peer()) {
    RequireIntIn("limits.healthMaxConnectionsPerPeer",
                 l.health_max_connections_per_peer(), 1, kMaxHealthConnections,
                 problems);
  }
}

}  // namespace treezor::broker::internal
