// Every setting of the broker with its documented default (docs/CONFIG.md),
// in one place: the member initialisers below. ResolveSettings
// (server/settings_resolver.h) fills a BrokerSettings from a validated config
// once, at start-up; each component then receives its part
// (TreezorOAuthClient the upstream settings, TokenCache the renewal settings
// and its worker count, the server credentials the TLS refresh interval).
//
//   BrokerSettings settings = ResolveSettings(config);
//   TokenCache cache(&fetcher, settings.renewal,
//                    settings.upstream.max_concurrent_requests, {...});
//
// Free of protobuf on purpose: the token cache (tzb_core, the part the
// ThreadSanitizer build compiles) uses it.
#ifndef TREEZOR_BROKER_SERVER_SETTINGS_H_
#define TREEZOR_BROKER_SERVER_SETTINGS_H_

#include <cstdint>

#include "absl/time/time.h"

namespace treezor::broker {

// The `renewal` section: when tokens are renewed and handed out, and how
// failures are retried.
struct RenewalSettings {
  double renew_remaining_fraction = 0.25;
  double jitter_fraction = 0.05;
  absl::Duration min_remaining = absl::Seconds(60);
  double min_remaining_fraction = 0.10;
  absl::Duration idle_timeout = absl::Hours(1);
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(60);
  absl::Duration refused_backoff = absl::Seconds(60);
  absl::Duration refresh_token_max_age = absl::Hours(24 * 30);
  // A token living less than this (from when it was received) is a bad
  // answer: refused and retried with the normal backoff.
  absl::Duration min_token_lifetime = absl::Seconds(5);
  // Rejected-token reports trigger at most one request per entry per this.
  absl::Duration rejected_token_min_interval = absl::Seconds(10);
};

// The `upstream` section: requests to Treezor.
struct UpstreamSettings {
  // Requests in flight at once, all tenants together (the token cache's
  // worker threads).
  int max_concurrent_requests = 8;
  // TCP + TLS handshake.
  absl::Duration connect_timeout = absl::Seconds(5);
  // The whole request, connection included.
  absl::Duration request_timeout = absl::Seconds(15);
  // Not configurable: idle connections kept for reuse, across all tenants.
  int max_idle_connections = 16;
};

// The `serverTls` section's non-file settings.
struct ServerTlsSettings {
  // How often the certificate, key and client CA files are re-read.
  absl::Duration refresh_interval = absl::Seconds(60);
};

// The `limits` section: what any peer can make the broker hold.
struct LimitsSettings {
  // --- The mTLS port.
  absl::Duration handshake_timeout = absl::Seconds(5);
  int64_t memory_bytes = int64_t{100} << 20;  // gRPC ResourceQuota
  int max_concurrent_streams = 100;            // per connection
  absl::Duration max_connection_age = absl::Minutes(30);
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  absl::Duration max_connection_idle = absl::Minutes(5);
  // Keepalive enforcement: pings without calls more often than this are
  // answered with GOAWAY.
  absl::Duration min_ping_interval = absl::Seconds(60);
  // --- Per caller identity and per tenant.
  int max_watch_streams_per_caller = 32;
  int max_scope_sets_per_tenant = 64;
  int max_scope_sets_per_caller = 16;
  // --- The plaintext health port (Check only).
  int64_t health_memory_bytes = int64_t{4} << 20;
  int health_max_concurrent_streams = 4;
  absl::Duration health_max_connection_idle = absl::Seconds(30);
  // --- Connections, refused at accept (connection_admission.h).
  int max_connections = 1000;
  int max_connections_per_peer = 250;
  int health_max_connections = 64;
  int health_max_connections_per_peer = 16;
};

struct BrokerSettings {
  RenewalSettings renewal;
  UpstreamSettings upstream;
  ServerTlsSettings server_tls;
  LimitsSettings limits;
  // `shutdownGracePeriod`: how long admitted calls get to finish on SIGTERM.
  absl::Duration shutdown_grace_period = absl::Seconds(10);
  // Not configurable: how often the config file and the credential files it
  // names are checked for changes.
  absl::Duration file_poll_interval = absl::Seconds(5);
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SETTINGS_H_
