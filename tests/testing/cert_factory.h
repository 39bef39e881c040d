// Real X.509 material for tests: a self-signed CA and leaf certificates it
// signs, written as PEM files into a directory, so that the broker, the fake
// Treezor and gRPC all load certificates exactly as in production.
//
//   TempDir dir;
//   ASSERT_OK_AND_ASSIGN(CertFactory ca, CertFactory::Create(dir.path(), "Test
//   CA")); ASSERT_OK_AND_ASSIGN(CertPaths server,
//                        ca.Issue("treezor",
//                        CertFactory::ServerLeaf("localhost")));
//   ASSERT_OK_AND_ASSIGN(CertPaths client,
//                        ca.Issue("acme", {.common_name = "acme"}));
//
// Files: `<dir>/<ca-name>-ca.crt` / `-ca.key` for the CA, `<dir>/<name>.crt` /
// `<name>.key` for a leaf (names are sanitised to [a-z0-9._-]). Keys are
// unencrypted PKCS#8, mode 0600.
//
// Rotation: Issue() with a name already used replaces its files. Each file is
// written to a temporary file in the same directory and renamed over the old
// one, so a file watcher never reads a half-written file. The key and the
// certificate are two renames (key first): a watcher can, for an instant, see
// the new key with the old certificate; gRPC's watcher rejects a mismatched
// pair and picks the new one up on its next refresh.
//
// Thread-safety: Issue() keeps no mutable state (serial numbers are random),
// so concurrent calls are safe as long as they use different names.
#ifndef TREEZOR_BROKER_TESTS_TESTING_CERT_FACTORY_H_
#define TREEZOR_BROKER_TESTS_TESTING_CERT_FACTORY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/pem.h"

namespace treezor::broker::testing {

struct CertPaths {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;  // the issuing CA's certificate
};

class CertFactory {
 public:
  enum class KeyType {
    kEcP256,   // fast: the default
    kRsa2048,  // what Treezor signs client certificates for
  };

  struct LeafOptions {
    // Empty: the subject has no CN.
    std::string common_name;
    std::vector<std::string> dns_sans;
    std::vector<std::string> uri_sans;
    std::vector<std::string> ip_sans;  // e.g. "127.0.0.1", "::1"
    absl::Duration validity = absl::Hours(24);
    // notBefore = now + offset. Negative with a short validity gives an
    // expired certificate; positive gives a not-yet-valid one.
    absl::Duration not_before_offset = absl::ZeroDuration();
    KeyType key_type = KeyType::kEcP256;
    std::vector<std::string> email_sans;
    // Malformed certificates, for tests of the identity parser: the SANs in
    // two subjectAltName extensions instead of one; one more
    // subjectAltName extension whose value is not DER.
    bool duplicate_san_extension = false;
    bool corrupt_san_extension = false;
  };

  // Makes a CA (basicConstraints CA:TRUE, keyUsage keyCertSign) valid from an
  // hour ago for 30 days and writes it into `dir` (created if missing).
  static absl::StatusOr<CertFactory> Create(
      std::string dir, std::string ca_common_name,
      KeyType ca_key_type = KeyType::kEcP256);

  // Issues a leaf certificate signed by the CA, with extendedKeyUsage
  // serverAuth + clientAuth and the given SANs, and a fresh key.
  absl::StatusOr<CertPaths> Issue(absl::string_view name,
                                  const LeafOptions& options) const;

  // Options for a server on this machine: DNS `localhost`, IP 127.0.0.1.
  static LeafOptions ServerLeaf(std::string common_name);

  const std::string& dir() const { return dir_; }
  const std::string& ca_cert_file() const { return ca_cert_file_; }
  const std::string& ca_key_file() const { return ca_key_file_; }

  CertFactory(CertFactory&&) = default;
  CertFactory& operator=(CertFactory&&) = default;

 private:
  CertFactory(std::string dir, std::string ca_cert_file,
              std::string ca_key_file, PkeyPtr ca_key, X509Ptr ca_cert);

  std::string dir_;
  std::string ca_cert_file_;
  std::string ca_key_file_;
  PkeyPtr ca_key_;
  X509Ptr ca_cert_;
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_CERT_FACTORY_H_
