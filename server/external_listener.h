// A gRPC port whose connections the broker accepts itself, so that it can
// refuse them before gRPC spends memory on a handshake: gRPC 1.51 has no
// connection cap, and its ResourceQuota does not count handshake state
// (about 70 KiB per half-open TLS connection). The listener binds the
// address like gRPC would (SO_REUSEADDR, no SO_REUSEPORT, TCP_NODELAY
// inherited by accepted sockets, "[::]" dual-stack), asks ConnectionAdmission
// about every accepted socket, closes a refused one at once (RST, no
// TIME_WAIT kept here) and hands the others to gRPC through its external
// connection acceptor, with the server's credentials.
//
//   auto listener = ExternalListener::Bind("0.0.0.0:8443");   // port in use?
//   grpc::ServerBuilder builder;
//   auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
//       ExternalConnectionType::FROM_FD, credentials);
//   server = builder.BuildAndStart();
//   (*listener)->Start(std::move(acceptor), &admission, on_refused);
//   ...
//   (*listener)->Stop();   // before server->Shutdown()
//
// Thread-safety: Bind/Start/Stop from one thread; the accept loop runs on
// its own thread; port() is constant after Bind.
#ifndef TREEZOR_BROKER_SERVER_EXTERNAL_LISTENER_H_
#define TREEZOR_BROKER_SERVER_EXTERNAL_LISTENER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server_builder.h"
#include "server/connection_admission.h"

namespace treezor::broker {

class ExternalListener {
 public:
  // Called on the accept thread for every refused connection.
  using OnRefused = std::function<void(ConnectionAdmission::Verdict,
                                       const std::string& peer)>;

  // Binds and listens on every address `address` ("host:port", see
  // host_port.h) resolves to, all on one port (port 0 picks one).
  // UNAVAILABLE when the port is in use or the host is not local.
  static absl::StatusOr<std::unique_ptr<ExternalListener>> Bind(
      const std::string& address);
  ~ExternalListener();  // Stop()

  int port() const { return port_; }

  void Start(
      std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor,
      ConnectionAdmission* admission, OnRefused on_refused);
  // Stops accepting and closes the listening sockets; connections already
  // handed to gRPC are gRPC's. Idempotent.
  void Stop();

 private:
  ExternalListener() = default;
  void AcceptLoop();
  void AcceptReady(int listen_fd);

  std::vector<int> listen_fds_;
  int wake_fd_ = -1;  // eventfd: Stop() wakes the accept loop
  int port_ = 0;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  ConnectionAdmission* admission_ = nullptr;
  OnRefused on_refused_;
  std::thread thread_;
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_EXTERNAL_LISTENER_H_
