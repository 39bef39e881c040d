#include "server/settings_resolver.h"

#include "common/proto_time.h"

namespace treezor::broker {

BrokerSettings ResolveSettings(const v1::BrokerConfig& config) {
  BrokerSettings s;
  const v1::Renewal& r = config.renewal();
  RenewalSettings& renewal = s.renewal;
  if (r.has_renew_remaining_fraction()) {
    renewal.renew_remaining_fraction = r.renew_remaining_fraction();
  }
  if (r.has_jitter_fraction()) renewal.jitter_fraction = r.jitter_fraction();
  if (r.has_min_remaining()) {
    renewal.min_remaining = FromProtoDuration(r.min_remaining());
  }
  if (r.has_min_remaining_fraction()) {
    renewal.min_remaining_fraction = r.min_remaining_fraction();
  }
  if (r.has_idle_timeout()) {
    renewal.idle_timeout = FromProtoDuration(r.idle_timeout());
  }
  if (r.has_initial_backoff()) {
    renewal.initial_backoff = FromProtoDuration(r.initial_backoff());
  }
  if (r.has_max_backoff()) {
    renewal.max_backoff = FromProtoDuration(r.max_backoff());
  }
  if (r.has_refused_backoff()) {
    renewal.refused_backoff = FromProtoDuration(r.refused_backoff());
  }
  if (r.has_refresh_token_max_age()) {
    renewal.refresh_token_max_age =
        FromProtoDuration(r.refresh_token_max_age());
  }

  const v1::Upstream& u = config.upstream();
  if (u.has_max_concurrent_requests()) {
    s.upstream.max_concurrent_requests = u.max_concurrent_requests();
  }
  if (u.has_connect_timeout()) {
    s.upstream.connect_timeout = FromProtoDuration(u.connect_timeout());
  }
  if (u.has_request_timeout()) {
    s.upstream.request_timeout = FromProtoDuration(u.request_timeout());
  }

  if (r.has_min_token_lifetime()) {
    renewal.min_token_lifetime = FromProtoDuration(r.min_token_lifetime());
  }
  if (r.has_rejected_token_min_interval()) {
    renewal.rejected_token_min_interval =
        FromProtoDuration(r.rejected_token_min_interval());
  }

  const v1::Limits& l = config.limits();
  LimitsSettings& limits = s.limits;
  if (l.has_handshake_timeout()) {
    limits.handshake_timeout = FromProtoDuration(l.handshake_timeout());
  }
  if (l.has_memory_bytes()) limits.memory_bytes = l.memory_bytes();
  if (l.has_max_concurrent_streams()) {
    limits.max_concurrent_streams = l.max_concurrent_streams();
  }
  if (l.has_max_connection_age()) {
    limits.max_connection_age = FromProtoDuration(l.max_connection_age());
  }
  if (l.has_max_connection_age_grace()) {
    limits.max_connection_age_grace =
        FromProtoDuration(l.max_connection_age_grace());
  }
  if (l.has_max_connection_idle()) {
    limits.max_connection_idle = FromProtoDuration(l.max_connection_idle());
  }
  if (l.has_min_ping_interval()) {
    limits.min_ping_interval = FromProtoDuration(l.min_ping_interval());
  }
  if (l.has_max_watch_streams_per_caller()) {
    limits.max_watch_streams_per_caller = l.max_watch_streams_per_caller();
  }
  if (l.has_max_scope_sets_per_tenant()) {
    limits.max_scope_sets_per_tenant = l.max_scope_sets_per_tenant();
  }
  if (l.has_max_scope_sets_per_caller()) {
    limits.max_scope_sets_per_caller = l.max_scope_sets_per_caller();
  }
  if (l.has_health_memory_bytes()) {
    limits.health_memory_bytes = l.health_memory_bytes();
  }
  if (l.has_health_max_concurrent_streams()) {
    limits.health_max_concurrent_streams = l.health_max_concurrent_streams();
  }
  if (l.has_health_max_connection_idle()) {
    limits.health_max_connection_idle =
        FromProtoDuration(l.health_max_connection_idle());
  }
  if (l.has_max_connections()) limits.max_connections = l.max_connections();
  if (l.has_max_connections_per_peer()) {
    limits.max_connections_per_peer = l.max_connections_per_peer();
  }
  if (l.has_health_max_connections()) {
    limits.health_max_connections = l.health_max_connections();
  }
  if (l.has_health_max_connections_per_peer()) {
    limits.health_max_connections_per_peer =
        l.health_max_connections_per_peer();
  }

  if (config.server_tls().has_refresh_interval()) {
    s.server_tls.refresh_interval =
        FromProtoDuration(config.server_tls().refresh_interval());
  }
  if (config.has_shutdown_grace_period()) {
    s.shutdown_grace_period = FromProtoDuration(config.shutdown_grace_period());
  }
  return s;
}

}  // namespace treezor::broker
