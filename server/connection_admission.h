// Bounds the connections one gRPC port holds, all peers together and per
// peer IP address, before gRPC spends anything on them (a TLS handshake costs
// tens of KiB that gRPC 1.51's ResourceQuota does not count, and 1.51 has no
// connection cap of its own). The port's accept loop (external_listener.h)
// asks Admit() for every accepted socket and closes the refused ones at once.
//
//   ConnectionAdmission admission({.max_connections = 1000,
//                                  .max_connections_per_peer = 250});
//   if (admission.Admit(fd, SocketCookie(fd), "10.1.2.3") !=
//       ConnectionAdmission::Verdict::kAdmitted) close(fd);
//
// gRPC closes the admitted sockets without telling us; a tracked socket is
// known closed when its descriptor no longer names the same socket (the
// kernel's SO_COOKIE differs, or the descriptor is gone). Admit() re-checks
// the tracked sockets only when a cap is reached, and at most once per
// `recheck_interval`, so a flood of refused connections costs one cheap
// check each, not a scan each.
//
// Thread-safety: thread-safe.
#ifndef TREEZOR_BROKER_SERVER_CONNECTION_ADMISSION_H_
#define TREEZOR_BROKER_SERVER_CONNECTION_ADMISSION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"

namespace treezor::broker {

// The kernel's identity of the socket behind `fd` (SO_COOKIE), 0 if `fd` is
// not an open socket.
uint64_t SocketCookie(int fd);

class ConnectionAdmission {
 public:
  struct Limits {
    int max_connections = 0;
    int max_connections_per_peer = 0;
  };
  enum class Verdict { kAdmitted, kPortFull, kPeerFull };
  // Whether `fd` still names the socket admitted with `cookie`.
  using StillOpen = std::function<bool(int fd, uint64_t cookie)>;
  struct Options {
    const Clock* clock = SystemClock::Get();
    absl::Duration recheck_interval = absl::Milliseconds(50);
    StillOpen still_open = [](int fd, uint64_t cookie) {
      return cookie != 0 && SocketCookie(fd) == cookie;
    };
  };

  explicit ConnectionAdmission(Limits limits) : ConnectionAdmission(limits, Options()) {}
  ConnectionAdmission(Limits limits, Options options);

  // Tracks the connection and returns kAdmitted, or the cap it would exceed.
  // A descriptor admitted again replaces its earlier (closed) connection.
  Verdict Admit(int fd, uint64_t cookie, const std::string& peer)
      ABSL_LOCKS_EXCLUDED(mu_);

  int open() const ABSL_LOCKS_EXCLUDED(mu_);  // as of the last check
  const Limits& limits() const { return limits_; }

 private:
  struct Tracked {
    uint64_t cookie = 0;
    std::string peer;
  };
  void Forget(std::map<int, Tracked>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecheckIfDue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Verdict Check(const std::string& peer) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Limits limits_;
  const Options options_;
  mutable Mutex mu_;
  std::map<int, Tracked> by_fd_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> per_peer_ ABSL_GUARDED_BY(mu_);
  absl::Time last_recheck_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CONNECTION_ADMISSION_H_
