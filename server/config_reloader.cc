#include "server/config_reloader.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/config.h"
#include "server/logging.h"

namespace treezor::broker {
namespace {

using google::protobuf::util::MessageDifferencer;

bool Differs(const google::protobuf::Message& a,
             const google::protobuf::Message& b) {
  return !MessageDifferencer::Equals(a, b);
}

template <typename Repeated>
bool RepeatedDiffers(const Repeated& a, const Repeated& b) {
  if (a.size() != b.size()) return true;
  for (int i = 0; i < a.size(); ++i) {
    if (Differs(a.Get(i), b.Get(i))) return true;
  }
  return false;
}

bool ScopeRulesDiffer(const v1::Tenant& a, const v1::Tenant& b) {
  auto list = [](const auto& scopes) {
    return std::vector<std::string>(scopes.begin(), scopes.end());
  };
  return list(a.default_scopes()) != list(b.default_scopes()) ||
         list(a.allowed_scopes()) != list(b.allowed_scopes());
}

// Top-level fields that only take effect at start-up.
std::vector<std::string> RestartRequired(const v1::BrokerConfig& before,
                                         const v1::BrokerConfig& after) {
  std::vector<std::string> fields;
  if (before.listen_address() != after.listen_address()) {
    fields.push_back("listenAddress");
  }
  if (before.health_listen_address() != after.health_listen_address()) {
    fields.push_back("healthListenAddress");
  }
  if (before.metrics_listen_address() != after.metrics_listen_address()) {
    fields.push_back("metricsListenAddress");
  }
  if (Differs(before.server_tls(), after.server_tls())) {
    fields.push_back("serverTls");
  }
  if (Differs(before.upstream(), after.upstream())) fields.push_back("upstream");
  if (Differs(before.renewal(), after.renewal())) fields.push_back("renewal");
  if (Differs(before.shutdown_grace_period(), after.shutdown_grace_period())) {
    fields.push_back("shutdownGracePeriod");
  }
  // Connection limits are gRPC server arguments, per-caller quotas are given
  // to the services and the cache when they are made.
  if (Differs(before.limits(), after.limits())) fields.push_back("limits");
  return fields;
}

std::vector<std::string> Sorted(const std::set<std::string>& names) {
  return {names.begin(), names.end()};
}

}  // namespace

std::vector<std::string> CredentialFiles(const v1::Tenant& t) {
  std::vector<std::string> files;
  for (const std::string& f :
       {t.client_secret_file(), t.username_file(), t.password_file(),
        t.upstream_tls().ca_file(), t.upstream_tls().cert_file(),
        t.upstream_tls().key_file()}) {
    if (!f.empty()) files.push_back(f);
  }
  return files;
}

ConfigDiff DiffConfigs(const v1::BrokerConfig& before,
                       const v1::BrokerConfig& after) {
  ConfigDiff diff;
  std::map<std::string, const v1::Tenant*> old_tenants, new_tenants;
  for (const v1::Tenant& t : before.tenants()) old_tenants[t.name()] = &t;
  for (const v1::Tenant& t : after.tenants()) new_tenants[t.name()] = &t;
  for (const auto& [name, t] : new_tenants) {
    auto it = old_tenants.find(name);
    if (it == old_tenants.end()) {
      diff.tenants_added.insert(name);
    } else if (Differs(*it->second, *t)) {
      diff.tenants_changed.insert(name);
      if (ScopeRulesDiffer(*it->second, *t)) diff.policy_changed = true;
    }
  }
  for (const auto& [name, t] : old_tenants) {
    if (!new_tenants.contains(name)) diff.tenants_removed.insert(name);
  }
  diff.policy_changed = diff.policy_changed || !diff.tenants_added.empty() ||
                        !diff.tenants_removed.empty() ||
                        RepeatedDiffers(before.callers(), after.callers()) ||
                        RepeatedDiffers(before.admins(), after.admins());
  diff.restart_required = RestartRequired(before, after);
  return diff;
}

ConfigReloader::ConfigReloader(v1::BrokerConfig config, Target* target,
                               Options options)
    : target_(target), options_(std::move(options)), config_(std::move(config)) {
  if (options_.progress != nullptr) options_.progress->SetGeneration(1);
}

ConfigReloader::~ConfigReloader() { StopWatching(); }

void ConfigReloader::StartWatching() {
  if (options_.config_path.empty()) return;
  MutexLock lock(&mu_);
  if (watcher_ != nullptr) return;
  watcher_ = std::make_unique<FileWatcher>(
      options_.file_poll_interval,
      [this](const std::vector<std::string>& paths) { OnFilesChanged(paths); });
  WatchFilesLocked();
}

void ConfigReloader::StopWatching() {
  std::unique_ptr<FileWatcher> watcher;
  {
    MutexLock lock(&mu_);
    watcher = std::move(watcher_);
  }
  // Outside the lock: the watcher's thread may be reloading (and waiting for
  // the lock); destroying the watcher waits for that thread.
  watcher.reset();
}

void ConfigReloader::WatchFilesLocked() {
  tenants_by_file_.clear();
  std::vector<std::string> files = {options_.config_path};
  for (const v1::Tenant& t : config_.tenants()) {
    for (const std::string& f : CredentialFiles(t)) {
      if (tenants_by_file_[f].insert(t.name()).second &&
          tenants_by_file_[f].size() == 1) {
        files.push_back(f);
      }
    }
  }
  watcher_->SetFiles(files);
}

void ConfigReloader::OnFilesChanged(const std::vector<std::string>& paths) {
  std::set<std::string> tenants;
  bool config_changed = false;
  {
    MutexLock lock(&mu_);
    for (const std::string& path : paths) {
      if (path == options_.config_path) config_changed = true;
      auto it = tenants_by_file_.find(path);
      if (it != tenants_by_file_.end()) {
        tenants.insert(it->second.begin(), it->second.end());
      }
    }
  }
  if (config_changed) {
    LogInfo("config file changed; reloading", {{"path", options_.config_path}});
    Reload();
  }
  for (const std::string& tenant : tenants) {
    target_->CredentialsChanged(tenant);
    // Logged once done, so that a reader of the log (and a test waiting for
    // the line) knows the backoff is lifted.
    LogInfo("credential file changed; retrying failed renewals now",
            {{"tenant", tenant}});
  }
}

ReloadResult ConfigReloader::RejectLocked(std::string why) {
  ReloadResult result;
  result.applied = false;
  result.generation = generation_.load();
  if (options_.metrics != nullptr) {
    options_.metrics->RecordReload(false, result.generation);
  }
  LogError("config reload rejected; keeping the current config",
           {{"path", options_.config_path}, {"error", why}});
  result.error = std::move(why);
  return result;
}

ReloadResult ConfigReloader::Reload() {
  MutexLock lock(&mu_);
  if (options_.config_path.empty()) {
    return RejectLocked("the broker was started without a config file path");
  }
  std::vector<ConfigWarning> warnings;
  absl::StatusOr<v1::BrokerConfig> next =
      LoadConfigFile(options_.config_path, &warnings);
  if (!next.ok()) return RejectLocked(std::string(next.status().message()));
  LogConfigWarnings(options_.config_path, warnings);
  if (MessageDifferencer::Equals(*next, config_)) {
    ReloadResult result;
    result.applied = true;
    result.generation = generation_.load();
    return result;
  }
  absl::StatusOr<Policy> policy = Policy::Create(*next);
  if (!policy.ok()) return RejectLocked(std::string(policy.status().message()));

  const ConfigDiff diff = DiffConfigs(config_, *next);
  target_->UpdateTenants(*next);
  auto shared_policy = std::make_shared<const Policy>(*std::move(policy));
  target_->SetPolicy(shared_policy);
  for (const std::string& t : diff.tenants_removed) target_->RemoveTenant(t);
  for (const std::string& t : diff.tenants_changed) target_->RenewTenantNow(t);
  std::set<std::string> to_prefetch = diff.tenants_added;
  to_prefetch.insert(diff.tenants_changed.begin(), diff.tenants_changed.end());
  if (!to_prefetch.empty()) target_->Prefetch(*shared_policy, to_prefetch);

  config_ = *std::move(next);
  const int64_t generation = generation_.fetch_add(1) + 1;
  if (options_.progress != nullptr) options_.progress->SetGeneration(generation);
  if (watcher_ != nullptr) WatchFilesLocked();
  if (options_.metrics != nullptr) {
    options_.metrics->RecordReload(true, generation);
  }

  ReloadResult result;
  result.applied = true;
  result.generation = generation;
  result.restart_required = diff.restart_required;
  result.tenants_added = Sorted(diff.tenants_added);
  result.tenants_removed = Sorted(diff.tenants_removed);
  result.tenants_changed = Sorted(diff.tenants_changed);
  result.policy_changed = diff.policy_changed;
  LogInfo("config reloaded",
          {{"generation", generation},
           {"tenants_added", absl::StrJoin(result.tenants_added, ",")},
           {"tenants_removed", absl::StrJoin(result.tenants_removed, ",")},
           {"tenants_changed", absl::StrJoin(result.tenants_changed, ",")},
           {"policy_changed", result.policy_changed ? "true" : "false"}});
  if (!result.restart_required.empty()) {
    LogWarning("config fields changed that take effect only after a restart",
               {{"fields", absl::StrJoin(result.restart_required, ",")}});
  }
  return result;
}

}  // namespace treezor::broker
