#include "server/config_reloader.h"

#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/substitute.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "tests/testing/log_capture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::treezor::broker::testing::TempDir;

constexpr absl::Duration kTimeout = absl::Seconds(10);

void WriteFile(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::binary) << content;
  std::rename(tmp.c_str(), path.c_str());
}

// Records what a reload asks of the broker, in order.
class RecordingTarget final : public ConfigReloader::Target {
 public:
  void UpdateTenants(const v1::BrokerConfig& config) override {
    std::vector<std::string> names;
    for (const auto& t : config.tenants()) names.push_back(t.name());
    Record(absl::StrCat("UpdateTenants:", absl::StrJoin(names, ",")));
  }
  void SetPolicy(std::shared_ptr<const Policy> policy) override {
    Record("SetPolicy");
  }
  void RemoveTenant(const std::string& tenant) override {
    Record(absl::StrCat("RemoveTenant:", tenant));
  }
  void RenewTenantNow(const std::string& tenant) override {
    Record(absl::StrCat("RenewTenantNow:", tenant));
  }
  void Prefetch(const Policy& policy,
                const std::set<std::string>& tenants) override {
    Record(absl::StrCat("Prefetch:", absl::StrJoin(tenants, ",")));
  }
  void CredentialsChanged(const std::string& tenant) override {
    Record(absl::StrCat("CredentialsChanged:", tenant));
  }

  std::vector<std::string> calls() const {
    MutexLock lock(&mu_);
    return calls_;
  }
  bool WaitFor(const std::string& call) {
    MutexLock lock(&mu_);
    return cv_.WaitUntil(&mu_, absl::Now() + kTimeout, [&] {
      return std::find(calls_.begin(), calls_.end(), call) != calls_.end();
    });
  }

 private:
  void Record(std::string call) {
    MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    cv_.SignalAll();
  }

  mutable Mutex mu_;
  CondVar cv_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

// A valid config whose files live in a temp dir; tests render variants.
class ConfigReloaderTest : public ::testing::Test {
 protected:
  ConfigReloaderTest() {
    for (const char* name : {"server.crt", "server.key", "ca.crt", "up.crt",
                             "up.key"}) {
      WriteFile(dir_.File(name), "-----BEGIN PEM-----\n");
    }
    WriteFile(dir_.File("acme.secret"), "secret-a\n");
    WriteFile(dir_.File("globex.secret"), "secret-g\n");
  }

  std::string Tenant(const std::string& name, const std::string& extra = "") {
    return absl::Substitute(
        R"({"name": "$0", "baseUrl": "https://$0.example", "clientId": "1",
            "clientSecretFile": "$1/$2.secret", $3
            "upstreamTls": {"certFile": "$1/up.crt", "keyFile": "$1/up.key"}})",
        name, dir_.path(), name == "globex" ? "globex" : "acme", extra);
  }

  std::string Json(const std::vector<std::string>& tenants,
                   const std::string& callers, const std::string& top = "") {
    return absl::Substitute(R"json({
      "listenAddress": "127.0.0.1:0", $0
      "serverTls": {"certFile": "$1/server.crt", "keyFile": "$1/server.key",
                    "clientCaFile": "$1/ca.crt"},
      "tenants": [$2],
      "callers": [$3]
    })json", top, dir_.path(), absl::StrJoin(tenants, ","), callers);
  }

  std::string DefaultJson() {
    return Json({Tenant("acme"), Tenant("globex")},
                R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})");
  }

  v1::BrokerConfig Parse(const std::string& json) {
    absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(json);
    EXPECT_OK(config);
    return config.value_or(v1::BrokerConfig());
  }

  // A reloader started from DefaultJson(), written to the config file.
  std::unique_ptr<ConfigReloader> MakeReloader(
      absl::Duration poll = absl::Hours(1)) {
    WriteFile(path_, DefaultJson());
    absl::StatusOr<v1::BrokerConfig> config = LoadConfigFile(path_);
    EXPECT_OK(config);
    return std::make_unique<ConfigReloader>(
        config.value_or(v1::BrokerConfig()), &target_,
        ConfigReloader::Options{.config_path = path_,
                                .file_poll_interval = poll,
                                .progress = &progress_});
  }

  TempDir dir_;
  const std::string path_ = dir_.File("broker.json");
  RecordingTarget target_;
  BrokerProgress progress_;
};

TEST_F(ConfigReloaderTest, DiffNamesTenantsAddedRemovedAndChanged) {
  const v1::BrokerConfig before = Parse(DefaultJson());
  const v1::BrokerConfig after =
      Parse(Json({Tenant("acme", R"("requestEncoding": "json",)"),
                  Tenant("initech")},
                 R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})"));
  const ConfigDiff diff = DiffConfigs(before, after);
  EXPECT_THAT(diff.tenants_added, ElementsAre("initech"));
  EXPECT_THAT(diff.tenants_removed, ElementsAre("globex"));
  EXPECT_THAT(diff.tenants_changed, ElementsAre("acme"));
  EXPECT_TRUE(diff.policy_changed);  // the tenant set changed
  EXPECT_THAT(diff.restart_required, IsEmpty());
}

TEST_F(ConfigReloaderTest, DiffSeesPolicyChangesOnlyWhereAuthorizationChanges) {
  const v1::BrokerConfig before = Parse(DefaultJson());
  // A tenant's transport setting: a changed tenant, the same policy.
  ConfigDiff encoding = DiffConfigs(
      before, Parse(Json({Tenant("acme", R"("requestEncoding": "json",)"),
                          Tenant("globex")},
                         R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})")));
  EXPECT_THAT(encoding.tenants_changed, ElementsAre("acme"));
  EXPECT_FALSE(encoding.policy_changed);
  // A tenant's scope rules.
  ConfigDiff scopes = DiffConfigs(
      before, Parse(Json({Tenant("acme", R"("allowedScopes": ["read_only"],)"),
                          Tenant("globex")},
                         R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})")));
  EXPECT_TRUE(scopes.policy_changed);
  // A caller's grants.
  ConfigDiff callers = DiffConfigs(
      before,
      Parse(Json({Tenant("acme"), Tenant("globex")},
                 R"({"identity": "spiffe://corp/a", "tenants": ["globex"]})")));
  EXPECT_TRUE(callers.policy_changed);
  EXPECT_THAT(callers.tenants_changed, IsEmpty());
  EXPECT_TRUE(DiffConfigs(before, before).empty());
}

TEST_F(ConfigReloaderTest, DiffNamesRestartRequiredFieldsInConfigOrder) {
  const v1::BrokerConfig before = Parse(DefaultJson());
  const v1::BrokerConfig after = Parse(Json(
      {Tenant("acme"), Tenant("globex")},
      R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})",
      R"("healthListenAddress": "127.0.0.1:0",
         "upstream": {"maxConcurrentRequests": 3},
         "renewal": {"idleTimeout": "60s"},
         "shutdownGracePeriod": "1s",
         "limits": {"maxConcurrentStreams": 10},)"));
  EXPECT_THAT(DiffConfigs(before, after).restart_required,
              ElementsAre("healthListenAddress", "upstream", "renewal",
                          "shutdownGracePeriod", "limits"));
}

TEST_F(ConfigReloaderTest, ValidChangeIsAppliedInOrderAndCountsAGeneration) {
  auto reloader = MakeReloader();
  WriteFile(path_,
            Json({Tenant("acme", R"("requestEncoding": "json",)"),
                  Tenant("initech")},
                 R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})"));
  const ReloadResult result = reloader->Reload();
  ASSERT_TRUE(result.applied) << result.error;
  EXPECT_EQ(result.generation, 2);
  EXPECT_EQ(reloader->generation(), 2);
  EXPECT_TRUE(progress_.WaitForGeneration(2, absl::ZeroDuration()));
  EXPECT_THAT(result.tenants_added, ElementsAre("initech"));
  EXPECT_THAT(result.tenants_removed, ElementsAre("globex"));
  EXPECT_THAT(result.tenants_changed, ElementsAre("acme"));
  EXPECT_TRUE(result.policy_changed);
  // The fetcher first, the policy before removed tenants go, then warm-up.
  EXPECT_THAT(target_.calls(),
              ElementsAre("UpdateTenants:acme,initech", "SetPolicy",
                          "RemoveTenant:globex", "RenewTenantNow:acme",
                          "Prefetch:acme,initech"));
}

TEST_F(ConfigReloaderTest, ReloadLogsTheConfigsWarnings) {
  auto reloader = MakeReloader();
  // Secret files readable by others are accepted, with a warning.
  chmod(dir_.File("acme.secret").c_str(), 0644);
  testing::LogCapture log;
  WriteFile(path_, Json({Tenant("acme")},
                        R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})"));
  const ReloadResult result = reloader->Reload();
  ASSERT_TRUE(result.applied) << result.error;
  EXPECT_TRUE(log.Contains("\"msg\":\"config warning\""));
  EXPECT_TRUE(log.Contains("\"field\":\"tenants[0].clientSecretFile\""));
  EXPECT_FALSE(log.Contains("secret-a"));  // a warning never holds a secret
}

TEST_F(ConfigReloaderTest, InvalidFileChangesNothing) {
  auto reloader = MakeReloader();
  WriteFile(path_, R"({"listenAddress": "127.0.0.1:1", "bogus": 1})");
  const ReloadResult result = reloader->Reload();
  EXPECT_FALSE(result.applied);
  EXPECT_THAT(result.error, HasSubstr("bogus"));
  EXPECT_EQ(result.generation, 1);
  EXPECT_EQ(reloader->generation(), 1);
  EXPECT_THAT(target_.calls(), IsEmpty());
}

TEST_F(ConfigReloaderTest, IdenticalFileIsAppliedWithoutANewGeneration) {
  auto reloader = MakeReloader();
  const ReloadResult result = reloader->Reload();
  EXPECT_TRUE(result.applied);
  EXPECT_EQ(result.generation, 1);
  EXPECT_THAT(target_.calls(), IsEmpty());
}

TEST_F(ConfigReloaderTest, WithoutAConfigPathReloadIsRefused) {
  ConfigReloader reloader(Parse(DefaultJson()), &target_, {});
  reloader.StartWatching();  // nothing to watch: no effect
  const ReloadResult result = reloader.Reload();
  EXPECT_FALSE(result.applied);
  EXPECT_THAT(result.error, HasSubstr("without a config file path"));
}

TEST_F(ConfigReloaderTest, ChangedConfigFileIsReloaded) {
  auto reloader = MakeReloader(absl::Milliseconds(20));
  reloader->StartWatching();
  WriteFile(path_, Json({Tenant("acme")},
                        R"({"identity": "spiffe://corp/a", "tenants": ["acme"]})"));
  ASSERT_TRUE(progress_.WaitForGeneration(2, kTimeout));
  EXPECT_TRUE(target_.WaitFor("RemoveTenant:globex"));
}

TEST_F(ConfigReloaderTest, ChangedCredentialFileNamesTheTenantsUsingIt) {
  auto reloader = MakeReloader(absl::Milliseconds(20));
  reloader->StartWatching();
  WriteFile(dir_.File("globex.secret"), "rotated\n");
  ASSERT_TRUE(target_.WaitFor("CredentialsChanged:globex"));
  EXPECT_EQ(reloader->generation(), 1);  // not a config change
  // Tenants sharing a file are all told.
  WriteFile(dir_.File("up.crt"), "-----BEGIN PEM----- rotated\n");
  EXPECT_TRUE(target_.WaitFor("CredentialsChanged:acme"));
}

}  // namespace
}  // namespace treezor::broker
