#include "server/server_credentials.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/security/server_credentials.h"

namespace treezor::broker {
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

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data found";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<BioPtr> OpenFile(const std::string& path,
                                absl::string_view field) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot read file ", path));
  }
  return bio;
}

absl::StatusOr<X509Ptr> ReadFirstCert(const std::string& path,
                                      absl::string_view field) {
  auto bio = OpenFile(path, field);
  if (!bio.ok()) return bio.status();
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", path, " holds no PEM certificate (", OpenSslError(), ")"));
  }
  return cert;
}

}  // namespace

absl::Status ValidateServerTlsFiles(const v1::ServerTls& tls) {
  auto cert = ReadFirstCert(tls.cert_file(), "serverTls.certFile");
  if (!cert.ok()) return cert.status();
  auto key_bio = OpenFile(tls.key_file(), "serverTls.keyFile");
  if (!key_bio.ok()) return key_bio.status();
  PkeyPtr key(
      PEM_read_bio_PrivateKey(key_bio->get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("serverTls.keyFile: ", tls.key_file(),
                     " holds no PEM private key (", OpenSslError(), ")"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "serverTls.keyFile: ", tls.key_file(),
        " does not match the certificate in serverTls.certFile"));
  }
  auto ca = ReadFirstCert(tls.client_ca_file(), "serverTls.clientCaFile");
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
