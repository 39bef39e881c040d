#include "server/refusal_reporter.h"

#include <memory>
#include <string>

#include "server/logging.h"

namespace treezor::broker {

ExternalListener::OnRefused RefusalReporter(BrokerMetrics* metrics,
                                            BrokerMetrics::Port port,
                                            const GrpcServerOptions& options,
                                            const Clock* clock) {
  struct State {
    absl::Time next_log = absl::InfinitePast();
    int64_t port_full = 0;
    int64_t peer_full = 0;
  };
  auto state = std::make_shared<State>();
  return [=](ConnectionAdmission::Verdict verdict, const std::string& peer) {
    const bool by_peer = verdict == ConnectionAdmission::Verdict::kPeerFull;
    metrics->RecordConnectionRefused(port, by_peer);
    ++(by_peer ? state->peer_full : state->port_full);
    // The steady timeline: a wall clock stepped back must not silence it.
    const absl::Time now = clock->MonotonicNow();
    if (now < state->next_log) return;
    state->next_log = now + kRefusalWarningInterval;
    LogWarning("connections refused",
               {{"port", BrokerMetrics::PortName(port)},
                {"last_peer", peer},
                {"limit", by_peer ? options.max_connections_per_peer_field
                                  : options.max_connections_field},
                {"max_connections", options.connections.max_connections},
                {"max_connections_per_peer",
                 options.connections.max_connections_per_peer},
                {"refused_at_port_limit", state->port_full},
                {"refused_at_peer_limit", state->peer_full}});
    state->port_full = state->peer_full = 0;
  };
}

}  // namespace treezor::broker
