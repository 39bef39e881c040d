#include "server/server_options.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/resource_quota.h"

namespace treezor::broker {
namespace {

// gRPC's name for the reflection plugin (ProtoServerReflectionPlugin::name).
constexpr char kReflectionPlugin[] = "proto_server_reflection";

// Milliseconds as a channel argument: at least 1, at most INT_MAX (which
// gRPC reads as "no limit" for connection ages and idle times).
int Millis(absl::Duration d) {
  const int64_t ms = absl::ToInt64Milliseconds(d);
  return static_cast<int>(std::clamp<int64_t>(
      ms, 1, std::numeric_limits<int>::max()));
}

int Clamp(int64_t v) {
  return static_cast<int>(
      std::clamp<int64_t>(v, 0, std::numeric_limits<int>::max()));
}

// Both ports: a port conflict fails loudly, slow handshakes are dropped,
// pings are rationed.
void CommonArgs(const LimitsSettings& limits, std::map<std::string, int>& args) {
  // gRPC enables SO_REUSEPORT by default: a second broker on the port would
  // start "successfully" and share its traffic.
  args[GRPC_ARG_ALLOW_REUSEPORT] = 0;
  args[GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS] = Millis(limits.handshake_timeout);
  args[GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS] = 0;
  args[GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS] =
      Millis(limits.min_ping_interval);
  args[GRPC_ARG_HTTP2_MAX_PING_STRIKES] = 2;
}

// Turns server reflection on or off for one builder. gRPC's reflection
// plugin is registered process-wide (InitProtoReflectionServerBuilderPlugin
// adds it to every builder made afterwards); this option decides per port.
class ReflectionOption final : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enabled) : enabled_(enabled) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(
      std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins)
      override {
    auto is_reflection = [](const auto& p) {
      return p != nullptr && p->name() == kReflectionPlugin;
    };
    const bool present =
        std::any_of(plugins->begin(), plugins->end(), is_reflection);
    if (enabled_ && !present) {
      plugins->push_back(
          std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
    } else if (!enabled_) {
      plugins->erase(
          std::remove_if(plugins->begin(), plugins->end(), is_reflection),
          plugins->end());
    }
  }

 private:
  const bool enabled_;
};

}  // namespace

GrpcServerOptions MtlsServerOptions(const LimitsSettings& limits) {
  GrpcServerOptions o;
  CommonArgs(limits, o.int_args);
  o.int_args[GRPC_ARG_MAX_CONCURRENT_STREAMS] =
      Clamp(limits.max_concurrent_streams);
  o.int_args[GRPC_ARG_MAX_CONNECTION_AGE_MS] = Millis(limits.max_connection_age);
  o.int_args[GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS] =
      Millis(limits.max_connection_age_grace);
  o.int_args[GRPC_ARG_MAX_CONNECTION_IDLE_MS] =
      Millis(limits.max_connection_idle);
  o.quota_name = "treezor-broker-mtls";
  o.memory_bytes = limits.memory_bytes;
  o.reflection = true;
  o.connections = {.max_connections = limits.max_connections,
                   .max_connections_per_peer = limits.max_connections_per_peer};
  o.max_connections_field = "limits.maxConnections";
  o.max_connections_per_peer_field = "limits.maxConnectionsPerPeer";
  return o;
}

GrpcServerOptions HealthServerOptions(const LimitsSettings& limits) {
  GrpcServerOptions o;
  CommonArgs(limits, o.int_args);
  o.int_args[GRPC_ARG_MAX_CONCURRENT_STREAMS] =
      Clamp(limits.health_max_concurrent_streams);
  o.int_args[GRPC_ARG_MAX_CONNECTION_IDLE_MS] =
      Millis(limits.health_max_connection_idle);
  o.int_args[GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH] = kHealthMaxRequestBytes;
  o.quota_name = "treezor-broker-health";
  o.memory_bytes = limits.health_memory_bytes;
  o.reflection = false;
  o.connections = {
      .max_connections = limits.health_max_connections,
      .max_connections_per_peer = limits.health_max_connections_per_peer};
  o.max_connections_field = "limits.healthMaxConnections";
  o.max_connections_per_peer_field = "limits.healthMaxConnectionsPerPeer";
  return o;
}

void ApplyServerOptions(const GrpcServerOptions& options,
                        grpc::ServerBuilder& builder) {
  for (const auto& [name, value] : options.int_args) {
    builder.AddChannelArgument(name, value);
  }
  grpc::ResourceQuota quota(options.quota_name);
  quota.Resize(static_cast<size_t>(std::max<int64_t>(0, options.memory_bytes)));
  builder.SetResourceQuota(quota);  // the builder keeps its own reference
  builder.SetOption(std::make_unique<ReflectionOption>(options.reflection));
}

}  // namespace treezor::broker
