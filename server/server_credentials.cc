#include "server/server_credentials.h"

#include <algorithm>

#include "common/pem.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace treezor::broker {

absl::Status ValidateServerTlsFiles(const v1::ServerTls& tls) {
  absl::StatusOr<X509Ptr> cert =
      ReadFirstCertificate(tls.cert_file(), "serverTls.certFile");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<PkeyPtr> key =
      ReadPrivateKey(tls.key_file(), "serverTls.keyFile");
  if (!key.ok()) return key.status();
  if (absl::Status s =
          CheckKeyMatchesCertificate(**cert, **key, "serverTls.keyFile",
                                     tls.key_file(), "serverTls.certFile");
      !s.ok()) {
    return s;
  }
  absl::StatusOr<X509Ptr> ca =
      ReadFirstCertificate(tls.client_ca_file(), "serverTls.clientCaFile");
  if (!ca.ok()) return ca.status();
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const v1::ServerTls& tls, absl::Duration refresh_interval) {
  if (absl::Status s = ValidateServerTlsFiles(tls); !s.ok()) return s;
  const auto refresh_seconds = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(refresh_interval)));
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          tls.key_file(), tls.cert_file(), tls.client_ca_file(),
          refresh_seconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  auto creds = grpc::experimental::TlsServerCredentials(options);
  if (creds == nullptr) {
    return absl::InternalError("gRPC refused the server TLS options");
  }
  return creds;
}

}  // namespace treezor::broker
