// The broker's mTLS server credentials: gRPC's FileWatcherCertificateProvider
// reloads the certificate, key and client CA when the files change (e.g. a
// cert-manager rotation), so no restart is needed. Client certificates are
// required and verified against the client CA: a caller without one, or with
// one from another CA, fails the handshake.
//
// The files are validated here at start-up (PEM parses, key matches the
// certificate) so a bad file is a clear start-up error naming the field,
// rather than a silently failing handshake.
#ifndef TREEZOR_BROKER_SERVER_SERVER_CREDENTIALS_H_
#define TREEZOR_BROKER_SERVER_SERVER_CREDENTIALS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// Checks that the three files hold a certificate chain, its private key and
// at least one CA certificate. Errors name the config field and the file.
absl::Status ValidateServerTlsFiles(const v1::ServerTls& tls);

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const v1::ServerTls& tls, absl::Duration refresh_interval);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_SERVER_CREDENTIALS_H_
