// The typed identity of a gRPC caller: the names its verified leaf
// certificate carries, kept apart by kind, as Policy matches them against
// `callers[].identity` and `admins[].identity`.
//
//   absl::StatusOr<PeerIdentity> peer = PeerIdentityFromAuthContext(*auth);
//   // peer->uri_sans, peer->dns_sans, peer->common_name
//
// Why typed: a certificate's CN and DNS SANs are not where a SPIFFE ID lives,
// so a CN that spells another workload's SPIFFE ID must not make the caller
// that workload. The matching rule (see policy.h) is the SPIFFE X.509-SVID
// one: a URI identity matches only a URI SAN, any other name a DNS SAN, or the
// CN of a certificate with no SAN at all.
//
// PeerIdentityFromPem parses the PEM text gRPC puts in the auth context
// (GRPC_X509_PEM_CERT_PROPERTY_NAME) with OpenSSL itself rather than trusting
// gRPC's flattened name list: it is a pure, bounded function that a fuzz
// target calls. Anything it cannot read unambiguously (two subjectAltName
// extensions, an undecodable one, a name with a NUL byte, more than
// kMaxPeerSubjectAltNames names) is refused, not skipped: skipping a SAN
// extension would turn the certificate "SAN-less" and let its CN speak.
//
// PeerIdentityMemo remembers the answer per certificate (issue 13): every
// call of a connection presents the same verified leaf, so its PEM is parsed
// once, not once per RPC.
//
// Thread-safety: the functions are pure; PeerIdentityMemo is thread-safe.
#ifndef TREEZOR_BROKER_SERVER_PEER_IDENTITY_H_
#define TREEZOR_BROKER_SERVER_PEER_IDENTITY_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sync.h"
#include "grpcpp/security/auth_context.h"

namespace treezor::broker {

// Bounds on what a caller's certificate may carry.
inline constexpr size_t kMaxPeerCertificatePemBytes = 65536;
inline constexpr int kMaxPeerSubjectAltNames = 100;

enum class IdentityKind { kUri, kDns, kCn };

// "uri", "dns", "cn" (as audit lines and errors write them).
absl::string_view IdentityKindName(IdentityKind kind);

// True if `identity` starts with a URI scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' or '.', then ':' and at least one more
// character), e.g. "spiffe://corp/payments", "urn:corp:x". Such a config
// identity matches only a URI SAN.
bool IsUriIdentity(absl::string_view identity);

struct PeerIdentity {
  std::vector<std::string> uri_sans;  // in certificate order
  std::vector<std::string> dns_sans;  // in certificate order
  std::string common_name;            // empty: no CN
  // SANs of other kinds (IP, email, ...): never matched, but their presence
  // means the certificate has SANs, so its CN does not identify it.
  int other_sans = 0;

  bool has_san() const {
    return !uri_sans.empty() || !dns_sans.empty() || other_sans > 0;
  }
  // URI SANs + DNS SANs + the CN if any.
  size_t name_count() const {
    return uri_sans.size() + dns_sans.size() + (common_name.empty() ? 0 : 1);
  }
};

// A config identity that a certificate matched, and through which kind of
// name.
struct MatchedIdentity {
  IdentityKind kind;
  std::string name;
  friend bool operator==(const MatchedIdentity& a, const MatchedIdentity& b) {
    return a.kind == b.kind && a.name == b.name;
  }
};

// The identity in the first certificate of `pem`. PERMISSION_DENIED, with
// the reason, for anything that is not one readable certificate within the
// bounds above.
absl::StatusOr<PeerIdentity> PeerIdentityFromPem(absl::string_view pem);

// The PEM of the verified leaf certificate an authenticated gRPC peer
// presented (GRPC_X509_PEM_CERT_PROPERTY_NAME); empty when the peer is not
// authenticated or presented none. A view into `context`.
absl::string_view PeerCertificatePem(const grpc::AuthContext& context);

// The identity of an authenticated gRPC peer (from its certificate's PEM);
// an empty PeerIdentity when the peer is not authenticated.
absl::StatusOr<PeerIdentity> PeerIdentityFromAuthContext(
    const grpc::AuthContext& context);

// PeerIdentityFromPem / PeerIdentityFromAuthContext, memoised by the PEM
// text itself (not a pointer or a hash: two different certificates can never
// share an entry). Bounded: at most `max_entries` certificates are kept, and
// when a new one would exceed that the memo starts over (cheap, and a
// connection's next call simply parses again). Refusals are remembered too:
// a hostile certificate costs one parse, not one per call.
//
// Each certificate's answer is shared (Known), not copied per call, and has
// a slot for what a user derives from it: the token service keeps its policy
// decision and the audit line's caller fields there (token_service.cc), so a
// cached GetToken neither parses, nor matches, nor formats its caller again.
class PeerIdentityMemo {
 public:
  static constexpr size_t kDefaultMaxEntries = 128;  // <= 8 MiB of PEM

  // One certificate's identity, immutable, plus the derived slot.
  class Known {
   public:
    explicit Known(absl::StatusOr<PeerIdentity> identity)
        : identity_(std::move(identity)) {}
    const absl::StatusOr<PeerIdentity>& identity() const { return identity_; }

    // What the memo's user derived from identity(): the last value stored if
    // `fresh` says it is still good, else `derive()`'s, stored. One memo
    // holds one type T (type-erased here so the memo needs no template).
    template <typename T>
    std::shared_ptr<const T> Derived(
        absl::FunctionRef<bool(const T&)> fresh,
        absl::FunctionRef<std::shared_ptr<const T>()> derive) const
        ABSL_LOCKS_EXCLUDED(mu_) {
      {
        MutexLock lock(&mu_);
        if (derived_ != nullptr && fresh(*static_cast<const T*>(derived_.get()))) {
          return std::static_pointer_cast<const T>(derived_);
        }
      }
      std::shared_ptr<const T> made = derive();  // outside the lock
      MutexLock lock(&mu_);
      derived_ = made;
      return made;
    }

   private:
    const absl::StatusOr<PeerIdentity> identity_;
    mutable Mutex mu_;
    mutable std::shared_ptr<const void> derived_ ABSL_GUARDED_BY(mu_);
  };

  explicit PeerIdentityMemo(size_t max_entries = kDefaultMaxEntries)
      : max_entries_(max_entries) {}

  std::shared_ptr<const Known> FromPem(absl::string_view pem)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The shared Known of an empty PeerIdentity (a peer without a certificate,
  // PeerCertificatePem() empty).
  const std::shared_ptr<const Known>& anonymous() const { return anonymous_; }
  // Certificates remembered now.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t max_entries_;
  const std::shared_ptr<const Known> anonymous_ =
      std::make_shared<const Known>(PeerIdentity());
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Known>> by_pem_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_PEER_IDENTITY_H_
