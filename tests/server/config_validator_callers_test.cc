// ValidateConfig: the `callers` and `admins` sections
// (config_validator_callers.cc).
#include "server/config_validator.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/config_fixture.h"
#include "tests/testing/status_matchers.h"

namespace treezor::broker {
namespace {

using ::treezor::broker::testing::ConfigFixture;

class CallerValidationTest : public ConfigFixture {};

TEST_F(CallerValidationTest, CallerIdentityRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->clear_identity();
  ExpectOnlyProblemAt(config, "callers[1].identity", "required");
}

TEST_F(CallerValidationTest, CallerIdentitiesUnique) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->set_identity("spiffe://corp/payments");
  ExpectOnlyProblemAt(config, "callers[1].identity",
                      "is already listed in callers[0]");
}

TEST_F(CallerValidationTest, CallerTenantsRequired) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->clear_tenants();
  ExpectOnlyProblemAt(config, "callers[1].tenants", "at least one");
}

TEST_F(CallerValidationTest, CallerTenantsMustBeConfigured) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(0)->add_tenants("gamma");
  ExpectOnlyProblemAt(config, "callers[0].tenants[2]",
                      "no tenant is named \"gamma\"");
}

TEST_F(CallerValidationTest, CallerScopesMustBeValid) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->add_scopes("read/all");
  ExpectOnlyProblemAt(config, "callers[1].scopes[1]");
}

TEST_F(CallerValidationTest, AdminIdentityRequired) {
  v1::BrokerConfig config = Good();
  config.add_admins();
  ExpectOnlyProblemAt(config, "admins[1].identity", "required");
}

// --- Identities: a URI with a scheme, or a DNS name / CN (issue 10 item 3)

TEST_F(CallerValidationTest, UrisDnsNamesAndCommonNamesAreIdentities) {
  v1::BrokerConfig config = Good();
  for (const char* identity :
       {"spiffe://cluster.local/ns/payments/sa/api", "urn:corp:reporting",
        "https://ci.example.com/jobs/7", "reporting.svc.cluster.local",
        "reporting", "Reporting_Batch-2", "*.corp.example"}) {
    SCOPED_TRACE(identity);
    config.mutable_callers(1)->set_identity(identity);
    config.mutable_admins(0)->set_identity(identity);
    EXPECT_OK(ValidateConfig(config));
  }
}

TEST_F(CallerValidationTest, IdentityWithWhitespaceIsRefused) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->set_identity("reporting batch");
  ExpectOnlyProblemAt(config, "callers[1].identity",
                      "\"reporting batch\" contains whitespace or a control "
                      "character (byte 9): an identity is a URI with a scheme "
                      "(spiffe://trust.domain/workload) or a DNS name / "
                      "certificate CN");
  config = Good();
  config.mutable_callers(0)->set_identity("spiffe://corp/payments ");
  ExpectOnlyProblemAt(config, "callers[0].identity", "(byte 22)");
}

TEST_F(CallerValidationTest, IdentityWithAControlCharacterIsRefusedEscaped) {
  v1::BrokerConfig config = Good();
  config.mutable_admins(0)->set_identity(std::string("spiffe://corp/ops\n", 18));
  ExpectOnlyProblemAt(config, "admins[0].identity",
                      "\"spiffe://corp/ops\\n\" contains whitespace or a "
                      "control character (byte 17)");
  config = Good();
  config.mutable_callers(1)->set_identity(std::string("rep\0orting", 10));
  ExpectOnlyProblemAt(config, "callers[1].identity", "(byte 3)");
}

TEST_F(CallerValidationTest, UriIdentityNeedsMoreThanAScheme) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->set_identity("spiffe:");
  ExpectOnlyProblemAt(config, "callers[1].identity",
                      "\"spiffe:\" is a URI scheme with nothing after it");
}

TEST_F(CallerValidationTest, SpiffeIdentityNeedsATrustDomain) {
  for (const char* identity : {"spiffe:corp/payments", "spiffe://",
                               "spiffe:///payments", "SPIFFE://"}) {
    SCOPED_TRACE(identity);
    v1::BrokerConfig config = Good();
    config.mutable_admins(0)->set_identity(identity);
    ExpectOnlyProblemAt(config, "admins[0].identity",
                        "is not a SPIFFE ID: expected spiffe://<trust "
                        "domain>/<workload path>");
  }
}

TEST_F(CallerValidationTest, IdentityLengthIsBounded) {
  v1::BrokerConfig config = Good();
  config.mutable_callers(1)->set_identity(std::string(254, 'a'));
  ExpectOnlyProblemAt(config, "callers[1].identity",
                      "is longer than 253 bytes, the longest DNS name");
  config.mutable_callers(1)->set_identity(std::string(253, 'a'));
  EXPECT_OK(ValidateConfig(config));
  config.mutable_callers(1)->set_identity("spiffe://corp/" +
                                          std::string(2035, 'a'));
  ExpectOnlyProblemAt(config, "callers[1].identity",
                      "is longer than 2048 bytes");
}

}  // namespace
}  // namespace treezor::broker
