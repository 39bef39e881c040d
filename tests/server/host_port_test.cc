#include "server/host_port.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using ::treezor::broker::testing::StatusIs;

TEST(ParseHostPort, NameAndPort) {
  ASSERT_OK_AND_ASSIGN(HostPort a, ParseHostPort("broker.internal:8443"));
  EXPECT_EQ(a.host, "broker.internal");
  EXPECT_EQ(a.port, 8443);
}

TEST(ParseHostPort, BracketedIpv6LosesItsBrackets) {
  ASSERT_OK_AND_ASSIGN(HostPort a, ParseHostPort("[::1]:0"));
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 0);
}

TEST(ParseHostPort, ErrorsQuoteTheAddressAndSayWhy) {
  EXPECT_THAT(ParseHostPort("::1:8443"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"::1:8443\" is not host:port (an IPv6 "
                                 "address needs brackets")));
  EXPECT_THAT(ParseHostPort("host:65536"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the port must be a number in [0, 65535]")));
}

TEST(SameBinding, WildcardCollidesWithAnyHostOnItsPort) {
  const HostPort any{"0.0.0.0", 8443}, local{"127.0.0.1", 8443},
      other_port{"127.0.0.1", 8444}, v6_any{"::", 8443};
  EXPECT_TRUE(SameBinding(any, local));
  EXPECT_TRUE(SameBinding(local, v6_any));
  EXPECT_TRUE(SameBinding(local, local));
  EXPECT_FALSE(SameBinding(any, other_port));
  EXPECT_FALSE(SameBinding(HostPort{"127.0.0.1", 0}, HostPort{"127.0.0.1", 0}));
  EXPECT_FALSE(SameBinding(HostPort{"10.0.0.1", 1}, HostPort{"10.0.0.2", 1}));
}

}  // namespace
}  // namespace treezor::broker
