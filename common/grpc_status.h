// absl::Status <-> grpc::Status, the one conversion each way. Inside, the
// broker and the client library speak absl::Status; gRPC's status appears
// only at the boundary: the broker's services answer with ToGrpcStatus, the
// client library and CLI turn what the broker answered into an absl::Status
// with FromGrpcStatus.
//
// Codes map one to one (both follow google.rpc.Code); the message is kept as
// is (the broker's messages never hold a secret).
#ifndef TREEZOR_COMMON_GRPC_STATUS_H_
#define TREEZOR_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace treezor {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace treezor

#endif  // TREEZOR_COMMON_GRPC_STATUS_H_
