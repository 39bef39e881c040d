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

}  // namespace
}  // namespace treezor::broker
