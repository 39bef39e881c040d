#include "server/peer_identity.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/pem.h"
#include "grpc/grpc_security_constants.h"

namespace treezor::broker {
namespace {

using GeneralNamesPtr =
    std::unique_ptr<GENERAL_NAMES, OpenSslFree<&GENERAL_NAMES_free>>;

struct OpenSslBufferFree {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};

absl::Status Denied(absl::string_view reason) {
  return absl::PermissionDeniedError(
      absl::StrCat("caller certificate: ", reason));
}

// The bytes of an ASN1 string, refused if they hold a NUL (a name that
// C-string code would read as a shorter one).
absl::StatusOr<std::string> NameBytes(const ASN1_STRING* s,
                                      absl::string_view what) {
  const unsigned char* data = ASN1_STRING_get0_data(s);
  const int length = ASN1_STRING_length(s);
  if (data == nullptr || length < 0) return std::string();
  if (std::memchr(data, '\0', static_cast<size_t>(length)) != nullptr) {
    return Denied(absl::StrCat("a ", what, " contains a NUL byte"));
  }
  return std::string(reinterpret_cast<const char*>(data),
                     static_cast<size_t>(length));
}

absl::Status ReadSubjectAltNames(X509* cert, PeerIdentity* peer) {
  int extensions = 0;
  int index = -1;
  for (int loc = -1;
       (loc = X509_get_ext_by_NID(cert, NID_subject_alt_name, loc)) >= 0;) {
    ++extensions;
    index = loc;
  }
  if (extensions == 0) return absl::OkStatus();
  if (extensions > 1) {
    return Denied("more than one subjectAltName extension");
  }
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509V3_EXT_d2i(X509_get_ext(cert, index))));
  if (names == nullptr) {
    return Denied("its subjectAltName extension cannot be decoded");
  }
  const int count = sk_GENERAL_NAME_num(names.get());
  if (count > kMaxPeerSubjectAltNames) {
    return Denied(absl::StrCat("more than ", kMaxPeerSubjectAltNames,
                               " subject alternative names (", count, ")"));
  }
  for (int i = 0; i < count; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_URI) {
      absl::StatusOr<std::string> uri =
          NameBytes(name->d.uniformResourceIdentifier, "URI SAN");
      if (!uri.ok()) return uri.status();
      peer->uri_sans.push_back(*std::move(uri));
    } else if (name->type == GEN_DNS) {
      absl::StatusOr<std::string> dns = NameBytes(name->d.dNSName, "DNS SAN");
      if (!dns.ok()) return dns.status();
      peer->dns_sans.push_back(*std::move(dns));
    } else {
      ++peer->other_sans;
    }
  }
  if (count == 0) ++peer->other_sans;  // an empty extension is still one
  return absl::OkStatus();
}

absl::Status ReadCommonName(X509* cert, PeerIdentity* peer) {
  X509_NAME* subject = X509_get_subject_name(cert);
  if (subject == nullptr) return absl::OkStatus();
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return absl::OkStatus();
  if (X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) {
    return Denied("more than one subject CN");
  }
  const ASN1_STRING* data =
      X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  std::unique_ptr<unsigned char, OpenSslBufferFree> owned(utf8);
  if (length < 0) return Denied("its subject CN cannot be decoded");
  if (std::memchr(utf8, '\0', static_cast<size_t>(length)) != nullptr) {
    return Denied("its subject CN contains a NUL byte");
  }
  peer->common_name.assign(reinterpret_cast<const char*>(utf8),
                           static_cast<size_t>(length));
  return absl::OkStatus();
}

}  // namespace

absl::string_view IdentityKindName(IdentityKind kind) {
  switch (kind) {
    case IdentityKind::kUri: return "uri";
    case IdentityKind::kDns: return "dns";
    case IdentityKind::kCn: return "cn";
  }
  return "unknown";
}

bool IsUriIdentity(absl::string_view identity) {
  if (identity.empty() || !absl::ascii_isalpha(identity[0])) return false;
  for (size_t i = 1; i < identity.size(); ++i) {
    const char c = identity[i];
    if (c == ':') return i + 1 < identity.size();
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return false;
}

absl::StatusOr<PeerIdentity> PeerIdentityFromPem(absl::string_view pem) {
  if (pem.empty()) return Denied("no certificate");
  if (pem.size() > kMaxPeerCertificatePemBytes) {
    return Denied(absl::StrCat("PEM larger than ", kMaxPeerCertificatePemBytes,
                               " bytes"));
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return Denied("out of memory");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return Denied(absl::StrCat("not a PEM certificate (",
                               OpenSslErrorString("unreadable"), ")"));
  }
  PeerIdentity peer;
  absl::Status status = ReadSubjectAltNames(cert.get(), &peer);
  if (status.ok()) status = ReadCommonName(cert.get(), &peer);
  ERR_clear_error();  // leave nothing behind for the thread's next user
  if (!status.ok()) return status;
  return peer;
}

absl::string_view PeerCertificatePem(const grpc::AuthContext& context) {
  if (!context.IsPeerAuthenticated()) return {};
  // The properties in place: no vector per call (FindPropertyValues).
  for (const grpc::AuthProperty& p : context) {
    if (p.first == GRPC_X509_PEM_CERT_PROPERTY_NAME) {
      return absl::string_view(p.second.data(), p.second.size());
    }
  }
  return {};
}

absl::StatusOr<PeerIdentity> PeerIdentityFromAuthContext(
    const grpc::AuthContext& context) {
  const absl::string_view pem = PeerCertificatePem(context);
  if (pem.empty()) return PeerIdentity();
  return PeerIdentityFromPem(pem);
}

std::shared_ptr<const PeerIdentityMemo::Known> PeerIdentityMemo::FromPem(
    absl::string_view pem) {
  {
    MutexLock lock(&mu_);
    auto it = by_pem_.find(pem);
    if (it != by_pem_.end()) return it->second;
  }
  // Parsed outside the lock: a slow parse does not hold up other callers.
  auto known = std::make_shared<const Known>(PeerIdentityFromPem(pem));
  if (max_entries_ == 0 || pem.size() > kMaxPeerCertificatePemBytes) {
    return known;
  }
  MutexLock lock(&mu_);
  if (by_pem_.size() >= max_entries_) by_pem_.clear();
  // A concurrent first call of the same certificate may have stored it
  // meanwhile: keep that one, so its derived slot is shared.
  return by_pem_.emplace(std::string(pem), std::move(known)).first->second;
}

size_t PeerIdentityMemo::size() const {
  MutexLock lock(&mu_);
  return by_pem_.size();
}

}  // namespace treezor::broker
