// The mTLS channel a client opens to the broker. The caller's certificate,
// key and the CA that signs the broker's certificate are read from files by
// gRPC's FileWatcherCertificateProvider and re-read every
// `certificate_refresh_interval`, so a certificate rotated on disk (e.g. by
// cert-manager) is presented on every new connection without a restart; a
// connection already established keeps the identity it was opened with.
//
//   BrokerConnection c{.address = "broker.internal:8443",
//                      .ca_file = "/tls/ca.crt", .cert_file = "/tls/tls.crt",
//                      .key_file = "/tls/tls.key"};
//   absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = CreateBrokerChannel(c);
//
// The files are checked here (each holds PEM, the key matches the
// certificate), so a wrong path is a clear error naming the file instead of
// handshakes that fail later. The broker's certificate must name the host of
// `address` (DNS or IP SAN).
#ifndef TREEZOR_BROKER_CLIENT_BROKER_CHANNEL_H_
#define TREEZOR_BROKER_CLIENT_BROKER_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"

namespace treezor::client {

struct BrokerConnection {
  // gRPC target, e.g. "broker.internal:8443" or "dns:///broker:8443".
  std::string address;
  std::string ca_file;    // PEM: the CA(s) that sign the broker's certificate
  std::string cert_file;  // PEM: this caller's certificate (chain)
  std::string key_file;   // PEM: its private key
  // How often the three files are re-read. At least 1 s.
  absl::Duration certificate_refresh_interval = absl::Seconds(60);
};

// INVALID_ARGUMENT naming the field and file when a file is missing, holds no
// PEM, or the key does not match the certificate.
absl::Status ValidateBrokerConnection(const BrokerConnection& connection);

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateBrokerChannel(
    const BrokerConnection& connection);

}  // namespace treezor::client

#endif  // TREEZOR_BROKER_CLIENT_BROKER_CHANNEL_H_
