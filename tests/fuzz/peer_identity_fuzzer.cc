// Fuzz target: peer identity extraction from a caller's certificate
// (server/peer_identity.h, PeerIdentityFromPem). Every input is tried twice:
// as PEM text as it is, and as DER bytes wrapped in a PEM envelope — mutating
// base64 rarely yields a parsable certificate, so the second form is what
// reaches OpenSSL's ASN.1 and subjectAltName handling. Invariants, for any
// input:
//  - the result is an identity or PERMISSION_DENIED, nothing else;
//  - an identity keeps the documented bounds: at most kMaxPeerSubjectAltNames
//    SANs in all, no NUL byte in any name, and the CN counts as a name only
//    when present;
//  - input over kMaxPeerCertificatePemBytes is refused without parsing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/peer_identity.h"
#include "tests/fuzz/fuzz_check.h"

namespace treezor::broker {
namespace {

std::string Shown(absl::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, 200)), "\"");
}

void Check(absl::string_view pem) {
  const absl::StatusOr<PeerIdentity> identity = PeerIdentityFromPem(pem);
  if (!identity.ok()) {
    TZB_FUZZ_CHECK(
        identity.status().code() == absl::StatusCode::kPermissionDenied,
        identity.status().ToString());
    return;
  }
  TZB_FUZZ_CHECK(pem.size() <= kMaxPeerCertificatePemBytes,
                 absl::StrCat("accepted ", pem.size(), " bytes of PEM"));
  const size_t sans = identity->uri_sans.size() + identity->dns_sans.size() +
                      static_cast<size_t>(identity->other_sans);
  TZB_FUZZ_CHECK(sans <= static_cast<size_t>(kMaxPeerSubjectAltNames),
                 absl::StrCat(sans, " SANs"));
  TZB_FUZZ_CHECK(identity->other_sans >= 0, "negative other_sans");
  for (const auto* names : {&identity->uri_sans, &identity->dns_sans}) {
    for (const std::string& name : *names) {
      TZB_FUZZ_CHECK(name.find('\0') == std::string::npos, Shown(name));
    }
  }
  TZB_FUZZ_CHECK(identity->common_name.find('\0') == std::string::npos,
                 Shown(identity->common_name));
  TZB_FUZZ_CHECK(identity->name_count() ==
                     identity->uri_sans.size() + identity->dns_sans.size() +
                         (identity->common_name.empty() ? 0 : 1),
                 "name_count disagrees with the names");
}

}  // namespace
}  // namespace treezor::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  treezor::broker::Check(input);
  std::string wrapped = "-----BEGIN CERTIFICATE-----\n";
  // 64 base64 characters a line, as PEM writes it.
  const std::string base64 = absl::Base64Escape(input);
  for (size_t i = 0; i < base64.size(); i += 64) {
    absl::StrAppend(&wrapped, absl::string_view(base64).substr(i, 64), "\n");
  }
  wrapped += "-----END CERTIFICATE-----\n";
  treezor::broker::Check(wrapped);
  return 0;
}
