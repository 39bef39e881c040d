#include "client/broker_channel.h"

#include <algorithm>
#include <cstdint>

#include "common/pem.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace treezor::client {

absl::Status ValidateBrokerConnection(const BrokerConnection& connection) {
  if (connection.address.empty()) {
    return absl::InvalidArgumentError("address: required");
  }
  absl::StatusOr<X509Ptr> ca =
      ReadFirstCertificate(connection.ca_file, "ca_file");
  if (!ca.ok()) return ca.status();
  absl::StatusOr<X509Ptr> cert =
      ReadFirstCertificate(connection.cert_file, "cert_file");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<PkeyPtr> key = ReadPrivateKey(connection.key_file, "key_file");
  if (!key.ok()) return key.status();
  return CheckKeyMatchesCertificate(**cert, **key, "key_file",
                                    connection.key_file, connection.cert_file);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateBrokerChannel(
    const BrokerConnection& connection) {
  if (absl::Status s = ValidateBrokerConnection(connection); !s.ok()) return s;
  const auto refresh_seconds = static_cast<unsigned int>(std::clamp<int64_t>(
      absl::ToInt64Seconds(connection.certificate_refresh_interval), 1,
      INT32_MAX));
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          connection.key_file, connection.cert_file, connection.ca_file,
          refresh_seconds);
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(std::move(provider));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // The broker's certificate must chain to ca_file and name the target host.
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::experimental::TlsCredentials(options);
  if (credentials == nullptr) {
    return absl::InternalError("gRPC refused the TLS channel options");
  }
  return grpc::CreateChannel(connection.address, credentials);
}

}  // namespace treezor::client
