// What a connection refused at accept (connection_admission.h) leaves: a
// metric increment each, and a warning at most every
// kRefusalWarningInterval per port, naming the limit and the last peer, with
// the counts since the previous warning. A flood must not become a log flood.
//
//   listener->Start(std::move(acceptor), admission,
//                   RefusalReporter(metrics, BrokerMetrics::Port::kMtls,
//                                   options, clock));
//
// Thread-safety: the returned function keeps state without a lock; it is
// called from one thread, the port's accept loop (external_listener.h).
#ifndef TREEZOR_BROKER_SERVER_REFUSAL_REPORTER_H_
#define TREEZOR_BROKER_SERVER_REFUSAL_REPORTER_H_

#include "absl/time/time.h"
#include "common/clock.h"
#include "server/external_listener.h"
#include "server/metrics.h"
#include "server/server_options.h"

namespace treezor::broker {

inline constexpr absl::Duration kRefusalWarningInterval = absl::Seconds(10);

// `metrics` and `clock` must outlive the returned function; `options` is
// copied (its limits and field names are what the warning names).
ExternalListener::OnRefused RefusalReporter(BrokerMetrics* metrics,
                                            BrokerMetrics::Port port,
                                            const GrpcServerOptions& options,
                                            const Clock* clock);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_REFUSAL_REPORTER_H_
