#include "server/connection_admission.h"

#include <sys/socket.h>

#include <utility>

namespace treezor::broker {

uint64_t SocketCookie(int fd) {
  uint64_t cookie = 0;
  socklen_t size = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &size) != 0) return 0;
  return cookie;
}

ConnectionAdmission::ConnectionAdmission(Limits limits, Options options)
    : limits_(limits), options_(std::move(options)) {}

ConnectionAdmission::Verdict ConnectionAdmission::Admit(
    int fd, uint64_t cookie, const std::string& peer) {
  MutexLock lock(&mu_);
  // The descriptor's number is free again, so its earlier socket is closed.
  if (auto it = by_fd_.find(fd); it != by_fd_.end()) Forget(it);
  Verdict verdict = Check(peer);
  if (verdict != Verdict::kAdmitted) {
    RecheckIfDue();
    verdict = Check(peer);
    if (verdict != Verdict::kAdmitted) return verdict;
  }
  by_fd_.emplace(fd, Tracked{cookie, peer});
  ++per_peer_[peer];
  return Verdict::kAdmitted;
}

int ConnectionAdmission::open() const {
  MutexLock lock(&mu_);
  return static_cast<int>(by_fd_.size());
}

ConnectionAdmission::Verdict ConnectionAdmission::Check(
    const std::string& peer) const {
  if (static_cast<int>(by_fd_.size()) >= limits_.max_connections) {
    return Verdict::kPortFull;
  }
  auto it = per_peer_.find(peer);
  if (it != per_peer_.end() && it->second >= limits_.max_connections_per_peer) {
    return Verdict::kPeerFull;
  }
  return Verdict::kAdmitted;
}

void ConnectionAdmission::RecheckIfDue() {
  const absl::Time now = options_.clock->MonotonicNow();
  if (now - last_recheck_ < options_.recheck_interval) return;
  last_recheck_ = now;
  for (auto it = by_fd_.begin(); it != by_fd_.end();) {
    auto next = std::next(it);
    if (!options_.still_open(it->first, it->second.cookie)) Forget(it);
    it = next;
  }
}

void ConnectionAdmission::Forget(std::map<int, Tracked>::iterator it) {
  auto peer = per_peer_.find(it->second.peer);
  if (peer != per_peer_.end() && --peer->second == 0) per_peer_.erase(peer);
  by_fd_.erase(it);
}

}  // namespace treezor::broker
