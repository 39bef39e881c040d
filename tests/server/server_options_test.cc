#include "server/server_options.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace treezor::broker {
namespace {

using ::testing::Contains;
using ::testing::Pair;

// The limits reach gRPC as the channel arguments gRPC reads: each setting
// under its GRPC_ARG_ name, durations in milliseconds.
TEST(ServerOptions, MtlsPortCarriesEveryConnectionLimit) {
  LimitsSettings limits;  // the documented defaults
  const GrpcServerOptions o = MtlsServerOptions(limits);
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_ALLOW_REUSEPORT, 0)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 5000)));
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_MAX_CONNECTION_AGE_MS, 30 * 60 * 1000)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 30 * 1000)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                            60 * 1000)));
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0)));
  EXPECT_EQ(o.memory_bytes, int64_t{100} << 20);
  EXPECT_TRUE(o.reflection);
  EXPECT_EQ(o.connections.max_connections, 1000);
  EXPECT_EQ(o.connections.max_connections_per_peer, 250);
  EXPECT_EQ(o.max_connections_field, "limits.maxConnections");
  EXPECT_EQ(o.max_connections_per_peer_field, "limits.maxConnectionsPerPeer");
}

TEST(ServerOptions, ConfiguredValuesReplaceTheDefaults) {
  LimitsSettings limits;
  limits.handshake_timeout = absl::Milliseconds(250);
  limits.max_concurrent_streams = 7;
  limits.max_connection_age = absl::Seconds(90);
  limits.memory_bytes = int64_t{32} << 20;
  limits.max_connections = 12;
  limits.max_connections_per_peer = 3;
  const GrpcServerOptions o = MtlsServerOptions(limits);
  EXPECT_EQ(o.connections.max_connections, 12);
  EXPECT_EQ(o.connections.max_connections_per_peer, 3);
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 250)));
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_MAX_CONCURRENT_STREAMS, 7)));
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_MAX_CONNECTION_AGE_MS, 90000)));
  EXPECT_EQ(o.memory_bytes, int64_t{32} << 20);
}

TEST(ServerOptions, HugeDurationsSaturateInsteadOfOverflowing) {
  LimitsSettings limits;
  limits.max_connection_age = absl::Hours(24 * 365 * 100);
  const GrpcServerOptions o = MtlsServerOptions(limits);
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                                        std::numeric_limits<int>::max())));
}

TEST(ServerOptions, ProbePortIsSmallAndServesNoReflection) {
  LimitsSettings limits;
  const GrpcServerOptions o = HealthServerOptions(limits);
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_ALLOW_REUSEPORT, 0)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 5000)));
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_MAX_CONCURRENT_STREAMS, 4)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 30 * 1000)));
  EXPECT_THAT(o.int_args, Contains(Pair(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                                        kHealthMaxRequestBytes)));
  EXPECT_THAT(o.int_args,
              Contains(Pair(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0)));
  EXPECT_EQ(o.memory_bytes, int64_t{4} << 20);
  EXPECT_NE(o.quota_name, MtlsServerOptions(limits).quota_name);
  EXPECT_FALSE(o.reflection);
  EXPECT_EQ(o.connections.max_connections, 64);
  EXPECT_EQ(o.connections.max_connections_per_peer, 16);
  EXPECT_EQ(o.max_connections_field, "limits.healthMaxConnections");
  EXPECT_EQ(o.max_connections_per_peer_field,
            "limits.healthMaxConnectionsPerPeer");
}

}  // namespace
}  // namespace treezor::broker
