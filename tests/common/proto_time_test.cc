#include "common/proto_time.h"

#include "gtest/gtest.h"

namespace treezor {
namespace {

TEST(ProtoTime, DurationRoundTripKeepsNanoseconds) {
  google::protobuf::Duration d;
  ToProtoDuration(absl::Milliseconds(2500), &d);
  EXPECT_EQ(d.seconds(), 2);
  EXPECT_EQ(d.nanos(), 500'000'000);
  EXPECT_EQ(FromProtoDuration(d), absl::Milliseconds(2500));
}

TEST(ProtoTime, TimestampRoundTripKeepsNanoseconds) {
  const absl::Time t =
      absl::FromUnixSeconds(1'800'000'000) + absl::Nanoseconds(123);
  google::protobuf::Timestamp ts;
  ToProtoTimestamp(t, &ts);
  EXPECT_EQ(ts.seconds(), 1'800'000'000);
  EXPECT_EQ(ts.nanos(), 123);
  EXPECT_EQ(FromProtoTimestamp(ts), t);
}

TEST(ProtoTime, InfiniteTimesLeaveTheTimestampUnset) {
  google::protobuf::Timestamp ts;
  ToProtoTimestamp(absl::InfiniteFuture(), &ts);
  ToProtoTimestamp(absl::InfinitePast(), &ts);
  EXPECT_EQ(ts.seconds(), 0);
  EXPECT_EQ(ts.nanos(), 0);
}

}  // namespace
}  // namespace treezor
