// Keeps the running broker's configuration current. Reload() reads the
// config file again and validates it completely; an invalid file changes
// nothing. A valid one is compared with the config in force (DiffConfigs)
// and applied to the broker's parts through a Target, without dropping a
// caller: tenants added start serving (their default tokens are fetched),
// tenants removed stop being renewed and their callers get
// PERMISSION_DENIED, changed tenants are renewed with their new settings,
// the new policy applies to the next RPC. Fields that need a restart are
// reported, not applied. The outcome is a ReloadResult (the admin service
// turns it into its API answer), a log line and a metric.
//
// It also watches the config file (a change reloads it) and every credential
// file the config names (a change tells the Target which tenants use it).
//
//   ConfigReloader reloader(config, &target, {.config_path = path, ...});
//   reloader.StartWatching();
//   ReloadResult r = reloader.Reload();     // SIGHUP, BrokerAdmin.ReloadConfig
//   reloader.StopWatching();                // at shutdown: no reload while draining
//
// Thread-safety: thread-safe. Reloads are serialised (one lock, held while a
// reload is applied); the Target is called with that lock held, so its
// methods must not call back into the reloader.
#ifndef TREEZOR_BROKER_SERVER_CONFIG_RELOADER_H_
#define TREEZOR_BROKER_SERVER_CONFIG_RELOADER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/sync.h"
#include "server/broker_progress.h"
#include "server/file_watcher.h"
#include "server/metrics.h"
#include "server/policy.h"
#include "treezor/broker/v1/config.pb.h"

namespace treezor::broker {

// What a reload did.
struct ReloadResult {
  // True when the new config was valid and is now in force (or identical).
  bool applied = false;
  // Why not, when `applied` is false: every problem, one a line.
  std::string error;
  // The config generation in force after the reload (1 at start-up).
  int64_t generation = 0;
  // Changed fields that only take effect after a restart (JSON names).
  std::vector<std::string> restart_required;
  // Sorted tenant names.
  std::vector<std::string> tenants_added;
  std::vector<std::string> tenants_removed;
  std::vector<std::string> tenants_changed;
  // Whether who-may-get-what changed (callers, admins, tenants or their
  // scope rules). The new policy is swapped in on every applied reload.
  bool policy_changed = false;
};

// How two valid configs differ.
struct ConfigDiff {
  std::set<std::string> tenants_added;
  std::set<std::string> tenants_removed;
  std::set<std::string> tenants_changed;  // any field of the tenant
  bool policy_changed = false;
  // Top-level fields that only take effect at start-up (JSON names, in
  // config order): listen addresses, serverTls, upstream, renewal,
  // shutdownGracePeriod, limits.
  std::vector<std::string> restart_required;

  bool empty() const {
    return tenants_added.empty() && tenants_removed.empty() &&
           tenants_changed.empty() && !policy_changed &&
           restart_required.empty();
  }
};
ConfigDiff DiffConfigs(const v1::BrokerConfig& before,
                       const v1::BrokerConfig& after);

// Every file a tenant reads credentials from.
std::vector<std::string> CredentialFiles(const v1::Tenant& tenant);

class ConfigReloader {
 public:
  // The broker's parts a reload acts on, called in the order declared here
  // (each step named for why it comes where it does).
  class Target {
   public:
    virtual ~Target() = default;
    // First, so the fetcher knows new tenants before anyone can ask for them.
    virtual void UpdateTenants(const v1::BrokerConfig& config) = 0;
    // Then the policy (the services'), before removed tenants' entries go,
    // so no caller re-creates one in between.
    virtual void SetPolicy(std::shared_ptr<const Policy> policy) = 0;
    virtual void RemoveTenant(const std::string& tenant) = 0;
    virtual void RenewTenantNow(const std::string& tenant) = 0;
    // Warm up the default scope sets of `tenants` (added and changed).
    virtual void Prefetch(const Policy& policy,
                          const std::set<std::string>& tenants) = 0;
    // Outside reloads: a credential file of `tenant` changed on disk.
    virtual void CredentialsChanged(const std::string& tenant) = 0;
  };

  struct Options {
    // The file the config in force was read from. Empty: Reload() refuses
    // and nothing is watched.
    std::string config_path;
    // How often watched files are checked.
    absl::Duration file_poll_interval = absl::Seconds(5);
    // Both nullable; must outlive the reloader.
    BrokerMetrics* metrics = nullptr;
    BrokerProgress* progress = nullptr;
  };

  // `config` is the validated config in force (generation 1). `target` must
  // outlive the reloader.
  ConfigReloader(v1::BrokerConfig config, Target* target, Options options);
  ~ConfigReloader();

  ConfigReloader(const ConfigReloader&) = delete;
  ConfigReloader& operator=(const ConfigReloader&) = delete;

  // Starts watching the config file and the credential files it names (no
  // effect without a config path).
  void StartWatching() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops watching; returns once no file event is being handled.
  void StopWatching() ABSL_LOCKS_EXCLUDED(mu_);

  ReloadResult Reload() ABSL_LOCKS_EXCLUDED(mu_);
  int64_t generation() const { return generation_.load(); }

 private:
  ReloadResult RejectLocked(std::string why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WatchFilesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFilesChanged(const std::vector<std::string>& paths)
      ABSL_LOCKS_EXCLUDED(mu_);

  Target* const target_;
  const Options options_;
  std::atomic<int64_t> generation_{1};

  Mutex mu_;
  v1::BrokerConfig config_ ABSL_GUARDED_BY(mu_);
  // Credential file -> tenants that use it.
  std::map<std::string, std::set<std::string>> tenants_by_file_
      ABSL_GUARDED_BY(mu_);
  std::unique_ptr<FileWatcher> watcher_ ABSL_GUARDED_BY(mu_);
};

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_CONFIG_RELOADER_H_
