#include "server/peer_identity.h"

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cert_factory.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::CertFactory;
using testing::StatusIs;

constexpr absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class PeerIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = CertFactory::Create(dir_.path(), "Identity CA");
    ASSERT_OK(ca);
    ca_.emplace(*std::move(ca));
  }

  // The PEM of a leaf issued with `options`.
  std::string Pem(const CertFactory::LeafOptions& options) {
    auto paths = ca_->Issue(absl::StrCat("leaf", ++n_), options);
    EXPECT_OK(paths);
    return paths.ok() ? ReadFile(paths->cert_file) : "";
  }

  testing::TempDir dir_;
  std::optional<CertFactory> ca_;
  int n_ = 0;
};

TEST_F(PeerIdentityTest, UriSansDnsSansAndTheCnAreKeptApart) {
  CertFactory::LeafOptions options;
  options.common_name = "spiffe://corp/payments";
  options.uri_sans = {"spiffe://corp/attacker"};
  options.dns_sans = {"a.internal", "b.internal"};
  ASSERT_OK_AND_ASSIGN(PeerIdentity peer, PeerIdentityFromPem(Pem(options)));
  EXPECT_THAT(peer.uri_sans, ElementsAre("spiffe://corp/attacker"));
  EXPECT_THAT(peer.dns_sans, ElementsAre("a.internal", "b.internal"));
  EXPECT_EQ(peer.common_name, "spiffe://corp/payments");
  EXPECT_EQ(peer.other_sans, 0);
  EXPECT_TRUE(peer.has_san());
  EXPECT_EQ(peer.name_count(), 4u);
}

TEST_F(PeerIdentityTest, CertificateWithoutSansHasOnlyItsCn) {
  ASSERT_OK_AND_ASSIGN(PeerIdentity peer,
                       PeerIdentityFromPem(Pem({.common_name = "batch"})));
  EXPECT_THAT(peer.uri_sans, IsEmpty());
  EXPECT_THAT(peer.dns_sans, IsEmpty());
  EXPECT_FALSE(peer.has_san());
  EXPECT_EQ(peer.common_name, "batch");
}

TEST_F(PeerIdentityTest, IpAndEmailSansAreSansAlthoughNeverMatched) {
  CertFactory::LeafOptions options;
  options.common_name = "batch";
  options.ip_sans = {"10.0.0.1"};
  options.email_sans = {"ops@corp.example"};
  ASSERT_OK_AND_ASSIGN(PeerIdentity peer, PeerIdentityFromPem(Pem(options)));
  EXPECT_EQ(peer.other_sans, 2);
  EXPECT_TRUE(peer.has_san());
  EXPECT_THAT(peer.uri_sans, IsEmpty());
  EXPECT_THAT(peer.dns_sans, IsEmpty());
}

TEST_F(PeerIdentityTest, CertificateWithoutCn) {
  CertFactory::LeafOptions options;
  options.uri_sans = {"spiffe://corp/payments"};
  ASSERT_OK_AND_ASSIGN(PeerIdentity peer, PeerIdentityFromPem(Pem(options)));
  EXPECT_EQ(peer.common_name, "");
  EXPECT_THAT(peer.uri_sans, ElementsAre("spiffe://corp/payments"));
}

TEST_F(PeerIdentityTest, SeveralUriSansAreAllReported) {
  // Refusing them is the policy's rule (policy_test); the parser reports.
  CertFactory::LeafOptions options;
  options.uri_sans = {"spiffe://corp/payments", "spiffe://corp/other"};
  ASSERT_OK_AND_ASSIGN(PeerIdentity peer, PeerIdentityFromPem(Pem(options)));
  EXPECT_EQ(peer.uri_sans.size(), 2u);
}

TEST_F(PeerIdentityTest, TwoSubjectAltNameExtensionsAreRefused) {
  CertFactory::LeafOptions options;
  options.common_name = "spiffe://corp/payments";
  options.dns_sans = {"a.internal"};
  options.duplicate_san_extension = true;
  EXPECT_THAT(PeerIdentityFromPem(Pem(options)),
              StatusIs(kDenied, HasSubstr("more than one subjectAltName")));
}

TEST_F(PeerIdentityTest, UndecodableSubjectAltNameIsRefusedNotIgnored) {
  // Ignoring it would make the certificate "SAN-less", and its CN would then
  // identify it.
  CertFactory::LeafOptions options;
  options.common_name = "cards.internal";
  options.corrupt_san_extension = true;
  EXPECT_THAT(PeerIdentityFromPem(Pem(options)),
              StatusIs(kDenied, HasSubstr("cannot be decoded")));
}

TEST_F(PeerIdentityTest, TooManyNamesAreRefused) {
  CertFactory::LeafOptions options;
  for (int i = 0; i <= kMaxPeerSubjectAltNames; ++i) {
    options.dns_sans.push_back(absl::StrCat("n", i, ".internal"));
  }
  EXPECT_THAT(PeerIdentityFromPem(Pem(options)),
              StatusIs(kDenied, HasSubstr("more than 100 subject alternative "
                                          "names (101)")));
  options.dns_sans.pop_back();
  EXPECT_OK(PeerIdentityFromPem(Pem(options)));
}

TEST_F(PeerIdentityTest, OnlyTheFirstCertificateOfAChainCounts) {
  const std::string leaf = Pem({.common_name = "leaf"});
  const std::string chain = leaf + ReadFile(ca_->ca_cert_file());
  ASSERT_OK_AND_ASSIGN(PeerIdentity peer, PeerIdentityFromPem(chain));
  EXPECT_EQ(peer.common_name, "leaf");
}

TEST_F(PeerIdentityTest, HostileInputIsRefusedWithAReason) {
  EXPECT_THAT(PeerIdentityFromPem(""),
              StatusIs(kDenied, "caller certificate: no certificate"));
  EXPECT_THAT(PeerIdentityFromPem("not a certificate"),
              StatusIs(kDenied, HasSubstr("not a PEM certificate")));
  const std::string pem = Pem({.common_name = "x"});
  EXPECT_THAT(PeerIdentityFromPem(pem.substr(0, pem.size() / 2)),
              StatusIs(kDenied, HasSubstr("not a PEM certificate")));
  std::string corrupted = pem;
  corrupted[corrupted.size() / 2] ^= 0x01;  // one base64 character changed
  EXPECT_THAT(PeerIdentityFromPem(corrupted), StatusIs(kDenied, ::testing::_));
  EXPECT_THAT(PeerIdentityFromPem(std::string(kMaxPeerCertificatePemBytes + 1,
                                              'A')),
              StatusIs(kDenied, HasSubstr("larger than 65536 bytes")));
  EXPECT_THAT(PeerIdentityFromPem(std::string("\0\0\0", 3)),
              StatusIs(kDenied, ::testing::_));
}

TEST(IsUriIdentity, SchemeMakesAUri) {
  EXPECT_TRUE(IsUriIdentity("spiffe://corp/payments"));
  EXPECT_TRUE(IsUriIdentity("urn:corp:payments"));
  EXPECT_TRUE(IsUriIdentity("https://payments.corp.example/"));
  EXPECT_FALSE(IsUriIdentity("payments.corp.example"));
  EXPECT_FALSE(IsUriIdentity("payments"));
  EXPECT_FALSE(IsUriIdentity(""));
  EXPECT_FALSE(IsUriIdentity(":payments"));
  EXPECT_FALSE(IsUriIdentity("1http://x"));
  EXPECT_FALSE(IsUriIdentity("spiffe:"));
  EXPECT_FALSE(IsUriIdentity("a b:c"));
}

TEST(IdentityKindName, NamesEachKind) {
  EXPECT_EQ(IdentityKindName(IdentityKind::kUri), "uri");
  EXPECT_EQ(IdentityKindName(IdentityKind::kDns), "dns");
  EXPECT_EQ(IdentityKindName(IdentityKind::kCn), "cn");
}

// --- PeerIdentityMemo (issue 13): the same answers, parsed once.

// `memo` and the parser agree on `pem`: same status, same names.
void ExpectSameAnswer(PeerIdentityMemo& memo, const std::string& pem) {
  const absl::StatusOr<PeerIdentity> direct = PeerIdentityFromPem(pem);
  const absl::StatusOr<PeerIdentity> memoised = memo.FromPem(pem)->identity();
  ASSERT_EQ(direct.status(), memoised.status());
  if (!direct.ok()) return;
  EXPECT_EQ(direct->uri_sans, memoised->uri_sans);
  EXPECT_EQ(direct->dns_sans, memoised->dns_sans);
  EXPECT_EQ(direct->common_name, memoised->common_name);
  EXPECT_EQ(direct->other_sans, memoised->other_sans);
}

TEST_F(PeerIdentityTest, MemoAnswersAsTheParserDoesForEveryKindOfCertificate) {
  CertFactory::LeafOptions uri;
  uri.common_name = "spiffe://corp/payments";
  uri.uri_sans = {"spiffe://corp/attacker"};
  CertFactory::LeafOptions dns;
  dns.common_name = "cards";
  dns.dns_sans = {"cards.internal"};
  CertFactory::LeafOptions cn_only;
  cn_only.common_name = "cn-only";
  CertFactory::LeafOptions two_uris;
  two_uris.uri_sans = {"spiffe://corp/a", "spiffe://corp/b"};
  const std::vector<std::string> pems = {Pem(uri), Pem(dns), Pem(cn_only),
                                         Pem(two_uris), "not a certificate"};
  PeerIdentityMemo memo;
  for (int round = 0; round < 2; ++round) {  // parsed, then remembered
    for (const std::string& pem : pems) ExpectSameAnswer(memo, pem);
  }
  EXPECT_EQ(memo.size(), pems.size());
  // A refusal is remembered as a refusal.
  EXPECT_THAT(memo.FromPem(pems[4])->identity(),
              StatusIs(kDenied, HasSubstr("")));
  EXPECT_EQ(memo.FromPem(pems[3])->identity()->uri_sans.size(), 2u);
  // Remembered means shared: the same answer object, not a copy per call.
  EXPECT_EQ(memo.FromPem(pems[0]), memo.FromPem(pems[0]));
  EXPECT_NE(memo.FromPem(pems[0]), memo.FromPem(pems[1]));
}

TEST_F(PeerIdentityTest, MemoIsBounded) {
  PeerIdentityMemo memo(/*max_entries=*/2);
  std::vector<std::string> pems;
  for (int i = 0; i < 5; ++i) {
    CertFactory::LeafOptions o;
    o.common_name = absl::StrCat("caller-", i);
    pems.push_back(Pem(o));
  }
  for (const std::string& pem : pems) {
    ExpectSameAnswer(memo, pem);
    EXPECT_LE(memo.size(), 2u);
  }
  ExpectSameAnswer(memo, pems[0]);  // forgotten, parsed again: same answer
}

// The derived slot: what a user derives from a certificate (the token
// service's policy decision) is derived once, kept while fresh, derived again
// when stale, and is the certificate's own.
TEST_F(PeerIdentityTest, MemoKeepsWhatIsDerivedFromACertificateWhileFresh) {
  CertFactory::LeafOptions a;
  a.uri_sans = {"spiffe://corp/a"};
  CertFactory::LeafOptions b;
  b.uri_sans = {"spiffe://corp/b"};
  PeerIdentityMemo memo;
  int derived = 0;
  int generation = 1;
  // T: the first URI SAN and the generation it was derived under.
  using Derived = std::pair<std::string, int>;
  auto get = [&](const std::string& pem) {
    std::shared_ptr<const PeerIdentityMemo::Known> known = memo.FromPem(pem);
    return known->Derived<Derived>(
        [&](const Derived& d) { return d.second == generation; },
        [&]() {
          ++derived;
          return std::make_shared<const Derived>(
              known->identity()->uri_sans.front(), generation);
        });
  };
  const std::string pem_a = Pem(a);
  const std::string pem_b = Pem(b);
  std::shared_ptr<const Derived> first = get(pem_a);
  EXPECT_EQ(first->first, "spiffe://corp/a");
  EXPECT_EQ(get(pem_a), first);  // kept
  EXPECT_EQ(derived, 1);
  EXPECT_EQ(get(pem_b)->first, "spiffe://corp/b");  // its own
  EXPECT_EQ(derived, 2);
  generation = 2;  // e.g. a new policy
  std::shared_ptr<const Derived> again = get(pem_a);
  EXPECT_NE(again, first);
  EXPECT_EQ(again->second, 2);
  EXPECT_EQ(derived, 3);
  EXPECT_EQ(get(pem_a), again);
  EXPECT_EQ(derived, 3);
}

// Micro-measurement (printed, not asserted: the machine is shared): the
// per-call cost of the identity with and without the memo.
TEST_F(PeerIdentityTest, MemoMicroMeasurement) {
  CertFactory::LeafOptions o;
  o.common_name = "payments";
  o.uri_sans = {"spiffe://corp/payments"};
  const std::string pem = Pem(o);
  constexpr int kCalls = 2000;
  PeerIdentityMemo memo;
  int failures = 0;
  auto per_call = [&](auto&& f) -> absl::Duration {
    const absl::Time start = absl::Now();
    for (int i = 0; i < kCalls; ++i) failures += f().ok() ? 0 : 1;
    return (absl::Now() - start) / kCalls;
  };
  const absl::Duration parse =
      per_call([&] { return PeerIdentityFromPem(pem).status(); });
  const absl::Duration memoised =
      per_call([&] { return memo.FromPem(pem)->identity().status(); });
  EXPECT_EQ(failures, 0);
  std::cout << "PeerIdentityFromPem: " << parse
            << "/call; PeerIdentityMemo::FromPem: " << memoised << "/call ("
            << pem.size() << "-byte PEM)\n";
  RecordProperty("parse_ns", static_cast<int>(absl::ToInt64Nanoseconds(parse)));
  RecordProperty("memo_ns",
                 static_cast<int>(absl::ToInt64Nanoseconds(memoised)));
}

}  // namespace
}  // namespace treezor::broker
