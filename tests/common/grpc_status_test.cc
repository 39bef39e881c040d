#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace treezor {
namespace {

TEST(GrpcStatus, OkIsOkBothWays) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatus, CodesMapOneToOne) {
  EXPECT_EQ(ToGrpcStatus(absl::PermissionDeniedError("x")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "x")).code(),
      absl::StatusCode::kOutOfRange);
}

TEST(GrpcStatus, EveryCodeAndMessageSurviveARoundTrip) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status original(static_cast<absl::StatusCode>(code),
                                "tenant \"acme\": refused");
    const grpc::Status wire = ToGrpcStatus(original);
    EXPECT_EQ(static_cast<int>(wire.error_code()), code);
    EXPECT_EQ(wire.error_message(), "tenant \"acme\": refused");
    EXPECT_EQ(FromGrpcStatus(wire), original);
  }
}

}  // namespace
}  // namespace treezor
