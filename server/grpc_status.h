// The one conversion from absl::Status (used everywhere inside the broker) to
// grpc::Status, at the service boundary. Codes map one to one; the message is
// kept as is (it never holds a secret — see the fetcher's contract).
#ifndef TREEZOR_BROKER_SERVER_GRPC_STATUS_H_
#define TREEZOR_BROKER_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace treezor::broker {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_GRPC_STATUS_H_
