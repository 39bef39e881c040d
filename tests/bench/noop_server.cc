// noop_server: the bare gRPC floor for load_generator (issue 13) — a server
// that does nothing but answer grpc.health.v1.Health/Check with SERVING from
// the callback API, over the same mTLS as the broker (same certificate files,
// client certificate required and verified). What GetToken and the broker's
// own Check are compared against: no interceptors, no audit, no policy, gRPC's
// default settings.
//
//   noop_server --listen=127.0.0.1:0 --cert=broker.crt --key=broker.key
//       --client_ca=internal-ca.crt
//
// Prints `noop server listening on port N` on stdout once serving; stops on
// SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "grpc/grpc.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "Address to listen on.");
ABSL_FLAG(std::string, cert, "", "Server certificate (PEM).");
ABSL_FLAG(std::string, key, "", "Server private key (PEM).");
ABSL_FLAG(std::string, client_ca, "",
          "CA (PEM) that client certificates must chain to.");

namespace treezor::broker::bench {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class NoopHealth final : public grpc::health::v1::Health::CallbackService {
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const HealthCheckRequest*,
                                  HealthCheckResponse* response) override {
    response->set_status(HealthCheckResponse::SERVING);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "noop_server: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Run() {
  grpc::SslServerCredentialsOptions ssl(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ReadFile(absl::GetFlag(FLAGS_client_ca));
  ssl.pem_key_cert_pairs.push_back(
      {ReadFile(absl::GetFlag(FLAGS_key)), ReadFile(absl::GetFlag(FLAGS_cert))});

  NoopHealth service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen),
                           grpc::SslServerCredentials(ssl), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "noop_server: cannot listen on %s\n",
                 absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  std::printf("noop server listening on port %d\n", port);
  std::fflush(stdout);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal = 0;
  sigwait(&signals, &signal);
  server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace treezor::broker::bench

int main(int argc, char** argv) {
  // As the broker does (server/main.cc): the same gRPC, the same Abseil.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "A bare callback-API gRPC server answering Health/Check over mTLS: the "
      "floor load_generator compares the broker with.");
  absl::ParseCommandLine(argc, argv);
  // Signals are taken by sigwait: block them before gRPC starts its threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  grpc_init();
  const int rc = treezor::broker::bench::Run();
  grpc_shutdown_blocking();
  return rc;
}
