#include "tests/testing/cert_factory.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace treezor::broker::testing {
namespace {

using BnPtr = std::unique_ptr<BIGNUM, OpenSslFree<&BN_free>>;
using ExtPtr =
    std::unique_ptr<X509_EXTENSION, OpenSslFree<&X509_EXTENSION_free>>;

constexpr absl::Duration kCaBackdate = absl::Hours(1);
constexpr absl::Duration kCaValidity = absl::Hours(24 * 30);

// OpenSSL's error (its queue is cleared) in a Status naming `what`.
absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(
      what, ": ", OpenSslErrorString("no OpenSSL error reported")));
}

absl::Status ErrnoError(int err, absl::string_view what) {
  return absl::ErrnoToStatus(err, what);
}

// Lowercase [a-z0-9._-]; anything else becomes '-'.
std::string SanitiseName(absl::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : absl::AsciiStrToLower(name)) {
    const bool keep = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                      c == '.' || c == '_' || c == '-';
    out.push_back(keep ? c : '-');
  }
  return out;
}

// Writes `contents` to a temporary file beside `path` and renames it over
// `path`: readers see the old file or the new one, never a partial one.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, mode_t mode) {
  std::string temp = path + ".tmp-XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) return ErrnoError(errno, absl::StrCat("mkstemp for ", path));
  bool renamed = false;
  absl::Cleanup remove_temp = [&] {
    if (!renamed) unlink(temp.c_str());
  };
  {
    absl::Cleanup close_fd = [fd] { close(fd); };
    if (fchmod(fd, mode) != 0) {
      return ErrnoError(errno, absl::StrCat("fchmod ", temp));
    }
    while (!contents.empty()) {
      const ssize_t n = write(fd, contents.data(), contents.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(errno, absl::StrCat("write ", temp));
      contents.remove_prefix(static_cast<size_t>(n));
    }
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    return ErrnoError(errno, absl::StrCat("rename ", temp, " to ", path));
  }
  renamed = true;
  return absl::OkStatus();
}

absl::StatusOr<PkeyPtr> GenerateKey(CertFactory::KeyType type) {
  EVP_PKEY* key = type == CertFactory::KeyType::kRsa2048 ? EVP_RSA_gen(2048)
                                                         : EVP_EC_gen("P-256");
  if (key == nullptr) return OpenSslError("generating a key");
  return PkeyPtr(key);
}

absl::StatusOr<std::string> ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError("writing a certificate as PEM");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::string> ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return OpenSslError("writing a private key as PEM");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// 127 random bits: positive, unique without any state to share.
absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return OpenSslError("drawing a serial number");
  }
  bytes[0] &= 0x7f;
  BnPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (bn == nullptr ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("setting the serial number");
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert, absl::Time not_before,
                         absl::Time not_after) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), absl::ToTimeT(not_before)) ==
          nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), absl::ToTimeT(not_after)) ==
          nullptr) {
    return OpenSslError("setting the validity period");
  }
  return absl::OkStatus();
}

absl::Status SetSubjectCommonName(X509* cert, const std::string& cn) {
  if (cn.empty()) return absl::OkStatus();  // no CN
  X509_NAME* name = X509_get_subject_name(cert);
  if (X509_NAME_add_entry_by_NID(
          name, NID_commonName, MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1) {
    return OpenSslError(absl::StrCat("setting subject CN \"", cn, "\""));
  }
  return absl::OkStatus();
}

// Adds one extension written in openssl.cnf syntax ("critical,CA:TRUE").
// `issuer` may be `cert` itself (self-signed).
absl::Status AddExtension(X509* cert, X509* issuer, int nid,
                          const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(
        absl::StrCat("adding extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

absl::Status AddExtensions(
    X509* cert, X509* issuer,
    std::initializer_list<std::pair<int, std::string>> extensions) {
  for (const auto& [nid, value] : extensions) {
    if (absl::Status s = AddExtension(cert, issuer, nid, value); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// "DNS:a,URI:b,IP:c" for the subjectAltName extension; empty if no SAN.
absl::StatusOr<std::string> SubjectAltNames(
    const CertFactory::LeafOptions& options) {
  std::vector<std::string> entries;
  const auto add = [&entries](
                       absl::string_view type,
                       const std::vector<std::string>& values) -> absl::Status {
    for (const std::string& v : values) {
      if (v.empty() || absl::StrContains(v, ',')) {
        return absl::InvalidArgumentError(
            absl::StrCat("SAN ", type, ":\"", v, "\" is empty or has a comma"));
      }
      entries.push_back(absl::StrCat(type, ":", v));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = add("DNS", options.dns_sans); !s.ok()) return s;
  if (absl::Status s = add("URI", options.uri_sans); !s.ok()) return s;
  if (absl::Status s = add("IP", options.ip_sans); !s.ok()) return s;
  if (absl::Status s = add("email", options.email_sans); !s.ok()) return s;
  return absl::StrJoin(entries, ",");
}

// A subjectAltName extension whose value is not DER (a truncated SEQUENCE).
absl::Status AddCorruptSanExtension(X509* cert) {
  using OctetPtr =
      std::unique_ptr<ASN1_OCTET_STRING, OpenSslFree<&ASN1_OCTET_STRING_free>>;
  static constexpr unsigned char kGarbage[] = {0x30, 0x7f, 0x86, 0x05, 'x'};
  OctetPtr value(ASN1_OCTET_STRING_new());
  if (value == nullptr ||
      ASN1_OCTET_STRING_set(value.get(), kGarbage, sizeof(kGarbage)) != 1) {
    return OpenSslError("building a corrupt subjectAltName");
  }
  ExtPtr ext(X509_EXTENSION_create_by_NID(nullptr, NID_subject_alt_name, 0,
                                          value.get()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError("adding a corrupt subjectAltName");
  }
  return absl::OkStatus();
}

// A certificate with everything but extensions and signature.
absl::StatusOr<X509Ptr> NewCertificate(const std::string& common_name,
                                       EVP_PKEY* key, absl::Time not_before,
                                       absl::Time not_after) {
  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("creating a certificate");
  }
  if (absl::Status s = SetRandomSerial(cert.get()); !s.ok()) return s;
  if (absl::Status s = SetValidity(cert.get(), not_before, not_after);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SetSubjectCommonName(cert.get(), common_name); !s.ok()) {
    return s;
  }
  return cert;
}

absl::Status Sign(X509* cert, EVP_PKEY* issuer_key) {
  if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0) {
    return OpenSslError("signing the certificate");
  }
  return absl::OkStatus();
}

// Writes key then certificate (see the rotation note in the header).
absl::Status WritePair(X509* cert, EVP_PKEY* key, const std::string& cert_file,
                       const std::string& key_file) {
  absl::StatusOr<std::string> cert_pem = ToPem(cert);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ToPem(key);
  if (!key_pem.ok()) return key_pem.status();
  if (absl::Status s = WriteFileAtomically(key_file, *key_pem, 0600); !s.ok()) {
    return s;
  }
  return WriteFileAtomically(cert_file, *cert_pem, 0644);
}

}  // namespace

CertFactory::CertFactory(std::string dir, std::string ca_cert_file,
                         std::string ca_key_file, PkeyPtr ca_key,
                         X509Ptr ca_cert)
    : dir_(std::move(dir)),
      ca_cert_file_(std::move(ca_cert_file)),
      ca_key_file_(std::move(ca_key_file)),
      ca_key_(std::move(ca_key)),
      ca_cert_(std::move(ca_cert)) {}

absl::StatusOr<CertFactory> CertFactory::Create(std::string dir,
                                                std::string ca_common_name,
                                                KeyType ca_key_type) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return ErrnoError(error.value(), absl::StrCat("creating directory ", dir));
  }
  std::string stem = SanitiseName(ca_common_name);
  if (absl::EndsWith(stem, "-ca")) stem.resize(stem.size() - 3);
  if (stem.empty()) stem = "test";
  const std::string cert_file = absl::StrCat(dir, "/", stem, "-ca.crt");
  const std::string key_file = absl::StrCat(dir, "/", stem, "-ca.key");

  auto key = GenerateKey(ca_key_type);
  if (!key.ok()) return key.status();
  const absl::Time now = absl::Now();
  auto cert = NewCertificate(ca_common_name, key->get(), now - kCaBackdate,
                             now + kCaValidity);
  if (!cert.ok()) return cert.status();
  X509* x = cert->get();
  if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1) {
    return OpenSslError("setting the CA's issuer name");
  }
  // The subject key identifier first: the authority key identifier of a
  // self-signed certificate is copied from it.
  if (absl::Status s =
          AddExtensions(x, x,
                        {{NID_basic_constraints, "critical,CA:TRUE"},
                         {NID_key_usage, "critical,keyCertSign,cRLSign"},
                         {NID_subject_key_identifier, "hash"},
                         {NID_authority_key_identifier, "keyid:always"}});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Sign(x, key->get()); !s.ok()) return s;
  if (absl::Status s = WritePair(x, key->get(), cert_file, key_file); !s.ok()) {
    return s;
  }
  return CertFactory(std::move(dir), cert_file, key_file, *std::move(key),
                     *std::move(cert));
}

absl::StatusOr<CertPaths> CertFactory::Issue(absl::string_view name,
                                             const LeafOptions& options) const {
  const std::string stem = SanitiseName(name);
  if (stem.empty()) return absl::InvalidArgumentError("empty certificate name");
  if (options.validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate \"", name, "\": validity must be positive"));
  }
  CertPaths paths{absl::StrCat(dir_, "/", stem, ".crt"),
                  absl::StrCat(dir_, "/", stem, ".key"), ca_cert_file_};

  absl::StatusOr<std::string> sans = SubjectAltNames(options);
  if (!sans.ok()) return sans.status();
  auto key = GenerateKey(options.key_type);
  if (!key.ok()) return key.status();
  const absl::Time not_before = absl::Now() + options.not_before_offset;
  auto cert = NewCertificate(options.common_name, key->get(), not_before,
                             not_before + options.validity);
  if (!cert.ok()) return cert.status();
  X509* x = cert->get();
  if (X509_set_issuer_name(x, X509_get_subject_name(ca_cert_.get())) != 1) {
    return OpenSslError("setting the issuer name");
  }
  const std::string key_usage =
      options.key_type == KeyType::kRsa2048
          ? "critical,digitalSignature,keyEncipherment"
          : "critical,digitalSignature";
  if (absl::Status s =
          AddExtensions(x, ca_cert_.get(),
                        {{NID_basic_constraints, "critical,CA:FALSE"},
                         {NID_key_usage, key_usage},
                         {NID_ext_key_usage, "serverAuth,clientAuth"},
                         {NID_subject_key_identifier, "hash"},
                         {NID_authority_key_identifier, "keyid:always"}});
      !s.ok()) {
    return s;
  }
  if (!sans->empty()) {
    for (int i = 0; i < (options.duplicate_san_extension ? 2 : 1); ++i) {
      if (absl::Status s =
              AddExtension(x, ca_cert_.get(), NID_subject_alt_name, *sans);
          !s.ok()) {
        return s;
      }
    }
  }
  if (options.corrupt_san_extension) {
    if (absl::Status s = AddCorruptSanExtension(x); !s.ok()) return s;
  }
  if (absl::Status s = Sign(x, ca_key_.get()); !s.ok()) return s;
  if (absl::Status s =
          WritePair(x, key->get(), paths.cert_file, paths.key_file);
      !s.ok()) {
    return s;
  }
  return paths;
}

CertFactory::LeafOptions CertFactory::ServerLeaf(std::string common_name) {
  LeafOptions options;
  options.common_name = std::move(common_name);
  options.dns_sans = {"localhost"};
  options.ip_sans = {"127.0.0.1"};
  return options;
}

}  // namespace treezor::broker::testing
