// OpenSSL handles owned by unique_ptr, and the PEM checks the broker and the
// client library make before handing certificate files to gRPC: a file holds
// a certificate, a private key, the key matches the certificate. Errors are
// INVALID_ARGUMENT and name the config field or option and the file, so a
// wrong path is a clear start-up error rather than a failing handshake later.
//
//   absl::StatusOr<X509Ptr> cert =
//       ReadFirstCertificate(cert_path, "serverTls.certFile");
//   absl::StatusOr<PkeyPtr> key =
//       ReadPrivateKey(key_path, "serverTls.keyFile");
//   absl::Status s = CheckKeyMatchesCertificate(
//       **cert, **key, "serverTls.keyFile", key_path, "serverTls.certFile");
//
// Thread-safety: all functions are thread-safe (OpenSSL's error queue is
// per thread).
#ifndef TREEZOR_COMMON_PEM_H_
#define TREEZOR_COMMON_PEM_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace treezor {

// Frees an OpenSSL object with `Free` (BIO_free, X509_free, ...):
//   using BnPtr = std::unique_ptr<BIGNUM, OpenSslFree<&BN_free>>;
template <auto Free>
struct OpenSslFree {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, OpenSslFree<&BIO_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslFree<&X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslFree<&EVP_PKEY_free>>;

// The earliest error in this thread's OpenSSL error queue, as text, or
// `if_none` when the queue is empty. Clears the queue.
std::string OpenSslErrorString(absl::string_view if_none);

// The first certificate of the PEM file `path`. `field` names the file's
// setting in errors: "<field>: required" for an empty path, "<field>: cannot
// read file <path>", "<field>: <path> holds no PEM certificate (<reason>)".
absl::StatusOr<X509Ptr> ReadFirstCertificate(const std::string& path,
                                             absl::string_view field);

// The private key of the PEM file `path` (unencrypted). Errors as above,
// "... holds no PEM private key (<reason>)".
absl::StatusOr<PkeyPtr> ReadPrivateKey(const std::string& path,
                                       absl::string_view field);

// OK if `key` is the private key of `cert`; otherwise "<key_field>:
// <key_path> does not match the certificate in <cert_description>".
absl::Status CheckKeyMatchesCertificate(X509& cert, EVP_PKEY& key,
                                        absl::string_view key_field,
                                        absl::string_view key_path,
                                        absl::string_view cert_description);

}  // namespace treezor

#endif  // TREEZOR_COMMON_PEM_H_
