#include "server/external_listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/host_port.h"
#include "server/logging.h"

namespace treezor::broker {
namespace {

// The IP address of a peer, IPv4-mapped IPv6 addresses as IPv4, so that one
// peer is one key whichever family the listening socket has.
std::string PeerAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(addr);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
      inet_ntop(AF_INET, &v6.sin6_addr.s6_addr[12], text, sizeof(text));
    } else {
      inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
    }
  } else {
    return "unknown";
  }
  return text;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t size = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0) return 0;
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
}

void SetPort(sockaddr* addr, int port) {
  if (addr->sa_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
  }
}

// A listening socket for one resolved address, or -1 with errno set.
int ListenOn(const addrinfo& ai) {
  const int fd = socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai.ai_protocol);
  if (fd < 0) return -1;
  const int on = 1;
  const int off = 0;
  // Accepted sockets inherit TCP_NODELAY: gRPC writes whole frames.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (ai.ai_family == AF_INET6) {
    // "[::]" serves IPv4 too, as gRPC's own listener does.
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (bind(fd, ai.ai_addr, ai.ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExternalListener>> ExternalListener::Bind(
    const std::string& address) {
  absl::StatusOr<HostPort> host_port = ParseHostPort(address);
  if (!host_port.ok()) return host_port.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  const std::string port_text = absl::StrCat(host_port->port);
  if (const int rc = getaddrinfo(host_port->host.c_str(), port_text.c_str(),
                                 &hints, &resolved);
      rc != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot resolve ", host_port->host, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<ExternalListener> listener(new ExternalListener);
  std::string last_error = "no address";
  bool in_use = false;
  for (addrinfo* ai = resolved; ai != nullptr; ai = ai->ai_next) {
    // Every address on the same port, the one the first bind picked.
    if (listener->port_ != 0) SetPort(ai->ai_addr, listener->port_);
    const int fd = ListenOn(*ai);
    if (fd < 0) {
      last_error = std::strerror(errno);
      if (errno == EADDRINUSE) {  // the port is taken: fail
        in_use = true;
        break;
      }
      continue;  // e.g. "localhost" on a host without IPv6
    }
    listener->listen_fds_.push_back(fd);
    if (listener->port_ == 0) listener->port_ = BoundPort(fd);
  }
  freeaddrinfo(resolved);
  if (listener->listen_fds_.empty() || in_use) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", last_error));
  }
  listener->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (listener->wake_fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  return listener;
}

ExternalListener::~ExternalListener() {
  Stop();
  for (int fd : listen_fds_) close(fd);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ExternalListener::Start(
    std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor,
    ConnectionAdmission* admission, OnRefused on_refused) {
  acceptor_ = std::move(acceptor);
  admission_ = admission;
  on_refused_ = std::move(on_refused);
  thread_ = std::thread([this] { AcceptLoop(); });
}

void ExternalListener::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  thread_.join();
  // No new connection reaches the kernel's queue once the sockets are
  // closed; queued ones are reset.
  for (int fd : listen_fds_) close(fd);
  listen_fds_.clear();
}

void ExternalListener::AcceptLoop() {
  std::vector<pollfd> fds;
  for (int fd : listen_fds_) fds.push_back(pollfd{fd, POLLIN, 0});
  fds.push_back(pollfd{wake_fd_, POLLIN, 0});
  int timeout_ms = -1;
  for (;;) {
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      LogError("accept loop stopped", {{"error", std::strerror(errno)}});
      return;
    }
    if (fds.back().revents != 0) return;  // Stop()
    timeout_ms = -1;
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      errno = 0;
      AcceptReady(fds[i].fd);
      // Out of descriptors: the queued connection stays readable, so back
      // off instead of spinning (the queue holds it meanwhile).
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        timeout_ms = 50;
        for (pollfd& p : fds) p.events = (p.fd == wake_fd_) ? POLLIN : 0;
      }
    }
    if (timeout_ms == -1) {
      for (pollfd& p : fds) p.events = POLLIN;
    }
  }
}

void ExternalListener::AcceptReady(int listen_fd) {
  for (;;) {
    sockaddr_storage addr{};
    socklen_t size = sizeof(addr);
    const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr),
                           &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        static std::atomic<int> logged{0};
        if (logged.fetch_add(1) < 10) {
          LogWarning("accept failed", {{"error", std::strerror(errno)}});
        }
      }
      return;  // errno tells AcceptLoop whether to back off
    }
    const std::string peer = PeerAddress(addr);
    const ConnectionAdmission::Verdict verdict =
        admission_->Admit(fd, SocketCookie(fd), peer);
    if (verdict != ConnectionAdmission::Verdict::kAdmitted) {
      // Counted before the peer can see the refusal.
      if (on_refused_) on_refused_(verdict, peer);
      // Reset rather than FIN: the refused peer learns at once, and the
      // broker keeps no TIME_WAIT for it.
      const linger reset{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      close(fd);
      continue;
    }
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters
        params;
    params.listener_fd = listen_fd;
    params.fd = fd;
    acceptor_->HandleNewConnection(&params);
  }
}

}  // namespace treezor::broker
