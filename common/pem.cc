#include "common/pem.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "absl/strings/str_cat.h"

namespace treezor {
namespace {

absl::StatusOr<BioPtr> OpenFile(const std::string& path,
                                absl::string_view field) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot read file ", path));
  }
  return bio;
}

// Reads one PEM object of `path` with `read` (a PEM_read_bio_* call);
// `what` names it in the error.
template <typename Ptr, typename Read>
absl::StatusOr<Ptr> ReadPem(const std::string& path, absl::string_view field,
                            absl::string_view what, Read read) {
  absl::StatusOr<BioPtr> bio = OpenFile(path, field);
  if (!bio.ok()) return bio.status();
  Ptr value(read(bio->get()));
  if (value == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", path, " holds no PEM ", what, " (",
                     OpenSslErrorString("no PEM data found"), ")"));
  }
  return value;
}

}  // namespace

std::string OpenSslErrorString(absl::string_view if_none) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return std::string(if_none);
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<X509Ptr> ReadFirstCertificate(const std::string& path,
                                             absl::string_view field) {
  return ReadPem<X509Ptr>(path, field, "certificate", [](BIO* bio) {
    return PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  });
}

absl::StatusOr<PkeyPtr> ReadPrivateKey(const std::string& path,
                                       absl::string_view field) {
  return ReadPem<PkeyPtr>(path, field, "private key", [](BIO* bio) {
    return PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  });
}

absl::Status CheckKeyMatchesCertificate(X509& cert, EVP_PKEY& key,
                                        absl::string_view key_field,
                                        absl::string_view key_path,
                                        absl::string_view cert_description) {
  if (X509_check_private_key(&cert, &key) == 1) return absl::OkStatus();
  ERR_clear_error();
  return absl::InvalidArgumentError(
      absl::StrCat(key_field, ": ", key_path,
                   " does not match the certificate in ", cert_description));
}

}  // namespace treezor
