#include "client/broker_channel.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace treezor::client {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// The reason OpenSSL gave, for an error message; clears its error queue.
std::string OpenSslReason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data found";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<BioPtr> OpenFile(const std::string& path,
                                absl::string_view field) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot read ", path));
  }
  return bio;
}

absl::StatusOr<X509Ptr> ReadCertificate(const std::string& path,
                                        absl::string_view field) {
  absl::StatusOr<BioPtr> bio = OpenFile(path, field);
  if (!bio.ok()) return bio.status();
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", path, " holds no PEM certificate (", OpenSslReason(), ")"));
  }
  return cert;
}

}  // namespace

absl::Status ValidateBrokerConnection(const BrokerConnection& connection) {
  if (connection.address.empty()) {
    return absl::InvalidArgumentError("address: required");
  }
  absl::StatusOr<X509Ptr> ca = ReadCertificate(connection.ca_file, "ca_file");
  if (!ca.ok()) return ca.status();
  absl::StatusOr<X509Ptr> cert =
      ReadCertificate(connection.cert_file, "cert_file");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<BioPtr> key_bio = OpenFile(connection.key_file, "key_file");
  if (!key_bio.ok()) return key_bio.status();
  PkeyPtr key(
      PEM_read_bio_PrivateKey(key_bio->get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("key_file: ", connection.key_file,
                     " holds no PEM private key (", OpenSslReason(), ")"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("key_file: ", connection.key_file,
                     " does not match the certificate in ",
                     connection.cert_file));
  }
  return absl::OkStatus();
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
