#include "server/connection_admission.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace treezor::broker {
namespace {

using Verdict = ConnectionAdmission::Verdict;
using testing::FakeClock;

// Which (fd, cookie) pairs the test has "closed"; the admission asks it
// instead of the kernel.
class FakeSockets {
 public:
  void Close(int fd, uint64_t cookie) {
    MutexLock lock(&mu_);
    closed_.insert({fd, cookie});
  }
  bool StillOpen(int fd, uint64_t cookie) {
    MutexLock lock(&mu_);
    ++checks_;
    return closed_.count({fd, cookie}) == 0;
  }
  int checks() {
    MutexLock lock(&mu_);
    return checks_;
  }

 private:
  Mutex mu_;
  std::set<std::pair<int, uint64_t>> closed_ ABSL_GUARDED_BY(mu_);
  int checks_ ABSL_GUARDED_BY(mu_) = 0;
};

class ConnectionAdmissionTest : public ::testing::Test {
 protected:
  ConnectionAdmission Make(int max, int per_peer) {
    ConnectionAdmission::Options options;
    options.clock = &clock_;
    options.recheck_interval = absl::Milliseconds(50);
    options.still_open = [this](int fd, uint64_t cookie) {
      return sockets_.StillOpen(fd, cookie);
    };
    return ConnectionAdmission({.max_connections = max,
                                .max_connections_per_peer = per_peer},
                               std::move(options));
  }

  FakeClock clock_;
  FakeSockets sockets_;
};

TEST_F(ConnectionAdmissionTest, AdmitsUpToThePortCapAcrossPeers) {
  ConnectionAdmission admission = Make(/*max=*/3, /*per_peer=*/2);
  EXPECT_EQ(admission.Admit(10, 1, "10.0.0.1"), Verdict::kAdmitted);
  EXPECT_EQ(admission.Admit(11, 2, "10.0.0.2"), Verdict::kAdmitted);
  EXPECT_EQ(admission.Admit(12, 3, "10.0.0.3"), Verdict::kAdmitted);
  EXPECT_EQ(admission.Admit(13, 4, "10.0.0.4"), Verdict::kPortFull);
  EXPECT_EQ(admission.open(), 3);
}

TEST_F(ConnectionAdmissionTest, OnePeerCannotTakeMoreThanItsShare) {
  ConnectionAdmission admission = Make(/*max=*/10, /*per_peer=*/2);
  EXPECT_EQ(admission.Admit(10, 1, "10.0.0.66"), Verdict::kAdmitted);
  EXPECT_EQ(admission.Admit(11, 2, "10.0.0.66"), Verdict::kAdmitted);
  EXPECT_EQ(admission.Admit(12, 3, "10.0.0.66"), Verdict::kPeerFull);
  // Another peer still gets in.
  EXPECT_EQ(admission.Admit(13, 4, "10.0.0.7"), Verdict::kAdmitted);
  EXPECT_EQ(admission.open(), 3);
}

TEST_F(ConnectionAdmissionTest, ClosedConnectionsFreeTheirSlotsOnRecheck) {
  ConnectionAdmission admission = Make(/*max=*/2, /*per_peer=*/2);
  ASSERT_EQ(admission.Admit(10, 1, "10.0.0.66"), Verdict::kAdmitted);
  ASSERT_EQ(admission.Admit(11, 2, "10.0.0.66"), Verdict::kAdmitted);
  sockets_.Close(10, 1);
  EXPECT_EQ(admission.Admit(12, 3, "10.0.0.66"), Verdict::kAdmitted);
  EXPECT_EQ(admission.open(), 2);
  // fd 10's slot was the one freed; fd 11 is still counted.
  EXPECT_EQ(admission.Admit(13, 4, "10.0.0.7"), Verdict::kPortFull);
}

TEST_F(ConnectionAdmissionTest, RechecksAtMostOncePerInterval) {
  ConnectionAdmission admission = Make(/*max=*/2, /*per_peer=*/2);
  ASSERT_EQ(admission.Admit(10, 1, "a"), Verdict::kAdmitted);
  ASSERT_EQ(admission.Admit(11, 2, "a"), Verdict::kAdmitted);
  EXPECT_EQ(sockets_.checks(), 0) << "no scan while under the cap";

  EXPECT_EQ(admission.Admit(12, 3, "b"), Verdict::kPortFull);
  EXPECT_EQ(sockets_.checks(), 2);
  // A flood of refused connections within the interval costs no scan.
  sockets_.Close(10, 1);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(admission.Admit(100 + i, 100 + i, "b"), Verdict::kPortFull);
  }
  EXPECT_EQ(sockets_.checks(), 2);

  clock_.Advance(absl::Milliseconds(50));
  EXPECT_EQ(admission.Admit(12, 3, "b"), Verdict::kAdmitted);
  EXPECT_EQ(sockets_.checks(), 4);
}

TEST_F(ConnectionAdmissionTest, ADescriptorAdmittedAgainReplacesItsOldSocket) {
  ConnectionAdmission admission = Make(/*max=*/2, /*per_peer=*/1);
  ASSERT_EQ(admission.Admit(10, 1, "10.0.0.66"), Verdict::kAdmitted);
  // gRPC closed fd 10 and the kernel handed the number to a new connection
  // from the same peer: the old one is gone, so the peer is at 1, not 2.
  EXPECT_EQ(admission.Admit(10, 2, "10.0.0.66"), Verdict::kAdmitted);
  EXPECT_EQ(admission.open(), 1);
  EXPECT_EQ(sockets_.checks(), 0);
}

TEST_F(ConnectionAdmissionTest, RefusalsDoNotCountAgainstThePeer) {
  ConnectionAdmission admission = Make(/*max=*/4, /*per_peer=*/1);
  ASSERT_EQ(admission.Admit(10, 1, "10.0.0.66"), Verdict::kAdmitted);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(admission.Admit(20 + i, 20 + i, "10.0.0.66"), Verdict::kPeerFull);
  }
  sockets_.Close(10, 1);
  clock_.Advance(absl::Milliseconds(50));
  EXPECT_EQ(admission.Admit(30, 30, "10.0.0.66"), Verdict::kAdmitted);
  EXPECT_EQ(admission.open(), 1);
}

TEST(SocketCookieTest, NamesOneSocketAndZeroForAClosedDescriptor) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  const uint64_t a = SocketCookie(pair[0]);
  const uint64_t b = SocketCookie(pair[1]);
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(SocketCookie(pair[0]), a);
  close(pair[0]);
  close(pair[1]);
  EXPECT_EQ(SocketCookie(pair[0]), 0u);
}

TEST(ConnectionAdmissionRealSocketsTest, AClosedSocketIsSeenAsClosed) {
  FakeClock clock;
  ConnectionAdmission::Options options;
  options.clock = &clock;
  ConnectionAdmission admission({.max_connections = 1,
                                 .max_connections_per_peer = 1},
                                std::move(options));
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  ASSERT_EQ(admission.Admit(pair[0], SocketCookie(pair[0]), "p"),
            Verdict::kAdmitted);
  EXPECT_EQ(admission.Admit(pair[1], SocketCookie(pair[1]), "p"),
            Verdict::kPortFull);
  close(pair[0]);
  clock.Advance(absl::Milliseconds(50));
  EXPECT_EQ(admission.Admit(pair[1], SocketCookie(pair[1]), "p"),
            Verdict::kAdmitted);
  close(pair[1]);
}

TEST_F(ConnectionAdmissionTest, ConcurrentAdmitsNeverExceedTheCaps) {
  ConnectionAdmission admission = Make(/*max=*/50, /*per_peer=*/10);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int fd = t * 1000 + i;
        if (admission.Admit(fd, fd + 1, "peer" + std::to_string(i % 8)) ==
            Verdict::kAdmitted) {
          admitted.fetch_add(1);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // 8 peers x 10 each could be 80; the port cap wins.
  EXPECT_EQ(admitted.load(), 50);
  EXPECT_EQ(admission.open(), 50);
}

}  // namespace
}  // namespace treezor::broker
