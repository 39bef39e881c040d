#include "server/broker_server.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/config.h"
#include "server/logging.h"
#include "server/server_credentials.h"

namespace treezor::broker {
namespace {

using google::protobuf::util::MessageDifferencer;

constexpr char kTokenServiceName[] = "treezor.broker.v1.TokenService";

// Applied to every server the broker starts.
void CommonServerOptions(grpc::ServerBuilder& builder) {
  // A port conflict must fail, not silently share traffic with another
  // process (gRPC enables SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

std::vector<v1::Tenant> Tenants(const v1::BrokerConfig& config) {
  return {config.tenants().begin(), config.tenants().end()};
}

// Every file a tenant reads credentials from.
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

// Top-level fields that only take effect at start-up.
std::vector<std::string> RestartRequired(const v1::BrokerConfig& before,
                                         const v1::BrokerConfig& after) {
  std::vector<std::string> fields;
  auto differs = [](const google::protobuf::Message& a,
                    const google::protobuf::Message& b) {
    return !MessageDifferencer::Equals(a, b);
  };
  if (before.listen_address() != after.listen_address()) {
    fields.push_back("listenAddress");
  }
  if (before.health_listen_address() != after.health_listen_address()) {
    fields.push_back("healthListenAddress");
  }
  if (before.metrics_listen_address() != after.metrics_listen_address()) {
    fields.push_back("metricsListenAddress");
  }
  if (differs(before.server_tls(), after.server_tls())) {
    fields.push_back("serverTls");
  }
  if (differs(before.upstream(), after.upstream())) fields.push_back("upstream");
  if (differs(before.renewal(), after.renewal())) fields.push_back("renewal");
  if (differs(before.shutdown_grace_period(), after.shutdown_grace_period())) {
    fields.push_back("shutdownGracePeriod");
  }
  return fields;
}

}  // namespace

// Fans the cache's events out to metrics and readiness.
class BrokerServer::CacheEvents final : public TokenCache::Observer {
 public:
  CacheEvents(BrokerServer* server, BrokerMetrics* metrics)
      : server_(server), metrics_(metrics) {}
  void OnHit() override { metrics_->OnHit(); }
  void OnMiss(bool joined) override { metrics_->OnMiss(joined); }
  void OnFetchDone(const CacheKey& key, const TokenCache::FetchReport& report) override {
    metrics_->OnFetchDone(key, report);
    server_->OnFetchDone(key);
  }
  void OnEntryDropped(const CacheKey& key) override {
    metrics_->OnEntryDropped(key);
  }

 private:
  BrokerServer* const server_;
  BrokerMetrics* const metrics_;
};

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Start(
    const v1::BrokerConfig& config, Options options) {
  auto policy = Policy::Create(config);
  if (!policy.ok()) return policy.status();

  std::unique_ptr<BrokerServer> broker(new BrokerServer);
  broker->options_ = options;
  broker->settings_ = ResolveSettings(config);
  if (options.file_poll_interval.has_value()) {
    broker->settings_.file_poll_interval = *options.file_poll_interval;
  }
  const BrokerSettings& settings = broker->settings_;

  broker->metrics_ = std::make_unique<BrokerMetrics>(options.clock);
  broker->cache_events_ =
      std::make_unique<CacheEvents>(broker.get(), broker->metrics_.get());

  broker->fetcher_ = std::make_unique<TreezorOAuthClient>(
      Tenants(config), settings.upstream, options.clock);
  broker->cache_ = std::make_unique<TokenCache>(
      broker->fetcher_.get(), settings.renewal,
      settings.upstream.max_concurrent_requests,
      TokenCache::Options{.clock = options.clock}, settings.limits);
  broker->cache_->SetObserver(broker->cache_events_.get());

  auto shared_policy = std::make_shared<const Policy>(*std::move(policy));
  broker->health_ = std::make_unique<HealthService>(
      std::vector<std::string>{kTokenServiceName});
  broker->token_service_ = std::make_unique<TokenService>(
      broker->cache_.get(), shared_policy, broker->metrics_.get());
  BrokerServer* self = broker.get();
  broker->admin_service_ = std::make_unique<AdminService>(
      broker->cache_.get(), shared_policy,
      AdminService::Hooks{[self] { return self->Reload(); },
                          [self] { return self->generation(); }},
      options.clock, broker->metrics_.get());
  broker->metrics_->SetSources(
      {[self] { return self->cache_->Snapshot(); },
       [self] { return self->cache_->fetches_in_flight(); },
       [self] { return self->token_service_->open_watches(); }});

  if (absl::Status s = broker->StartServers(config); !s.ok()) return s;

  {
    MutexLock lock(&broker->reload_mu_);
    broker->config_ = config;
  }
  broker->PrefetchDefaults(*shared_policy, {});
  if (!options.config_path.empty()) {
    broker->watcher_ = std::make_unique<FileWatcher>(
        settings.file_poll_interval,
        [self](const std::vector<std::string>& paths) {
          self->OnFilesChanged(paths);
        });
    MutexLock lock(&broker->reload_mu_);
    broker->WatchFilesLocked();
  }
  LogInfo("broker started",
          {{"listen_address", config.listen_address()},
           {"port", broker->port_},
           {"health_port", broker->health_port_},
           {"metrics_port", broker->metrics_port()},
           {"tenants", config.tenants_size()},
           {"callers", config.callers_size()},
           {"admins", config.admins_size()}});
  return broker;
}

absl::Status BrokerServer::StartServers(const v1::BrokerConfig& config) {
  auto credentials = MakeServerCredentials(
      config.server_tls(), settings_.server_tls.refresh_interval);
  if (!credentials.ok()) return credentials.status();
  // Reflection describes every service registered with protobuf-generated
  // code, health included (see health_service.h).
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  {
    grpc::ServerBuilder builder;
    CommonServerOptions(builder);
    builder.AddListeningPort(config.listen_address(), *credentials, &port_);
    builder.RegisterService(token_service_.get());
    builder.RegisterService(admin_service_.get());
    builder.RegisterService(health_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("listenAddress: cannot listen on ",
                       config.listen_address(), " (address in use or not local?)"));
    }
  }
  if (!config.health_listen_address().empty()) {
    grpc::ServerBuilder builder;
    CommonServerOptions(builder);
    builder.AddListeningPort(config.health_listen_address(),
                             grpc::InsecureServerCredentials(), &health_port_);
    builder.RegisterService(health_.get());
    health_server_ = builder.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat(
          "healthListenAddress: cannot listen on ",
          config.health_listen_address(), " (address in use or not local?)"));
    }
  }
  if (!config.metrics_listen_address().empty()) {
    if (absl::Status s = metrics_->Serve(config.metrics_listen_address());
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

void BrokerServer::PrefetchDefaults(const Policy& policy,
                                    const std::set<std::string>& only) {
  std::vector<CacheKey> keys;
  for (const auto& [tenant, scopes] : policy.DefaultScopeSets()) {
    if (only.empty() || only.contains(tenant)) {
      keys.push_back(CacheKey{tenant, scopes});
    }
  }
  {
    MutexLock lock(&ready_mu_);
    warming_up_.insert(keys.begin(), keys.end());
  }
  for (const CacheKey& key : keys) cache_->Prefetch(key);
}

void BrokerServer::OnFetchDone(const CacheKey& key) {
  {
    MutexLock lock(&ready_mu_);
    if (warming_up_.erase(key) > 0 && warming_up_.empty() && !draining_ &&
        !health_->serving()) {
      LogInfo("ready: every tenant's default token fetched or failed");
      health_->SetServing(true);
    }
  }
  // Last, so whoever waits on the count sees readiness already updated.
  MutexLock lock(&progress_mu_);
  ++fetches_done_;
  progress_cv_.SignalAll();
}

void BrokerServer::WatchFilesLocked() {
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

void BrokerServer::OnFilesChanged(const std::vector<std::string>& paths) {
  std::set<std::string> tenants;
  bool config_changed = false;
  {
    MutexLock lock(&reload_mu_);
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
    // Secrets are read at every request, so the next renewal uses the new
    // ones; a tenant waiting out a refusal retries now instead of after its
    // backoff, and a new client certificate needs a new TLS connection.
    LogInfo("credential file changed; retrying failed renewals now",
            {{"tenant", tenant}});
    fetcher_->ResetConnections(tenant);
    cache_->RetryTenantNow(tenant);
  }
}

v1::ReloadConfigResponse BrokerServer::Reload() {
  v1::ReloadConfigResponse response;
  MutexLock lock(&reload_mu_);
  auto reject = [&](absl::string_view why) {
    response.set_applied(false);
    response.set_error(std::string(why));
    response.set_config_generation(generation_.load());
    metrics_->RecordReload(false, generation_.load());
    LogError("config reload rejected; keeping the current config",
             {{"path", options_.config_path}, {"error", why}});
    return response;
  };
  if (options_.config_path.empty()) {
    return reject("the broker was started without a config file path");
  }
  absl::StatusOr<v1::BrokerConfig> next = LoadConfigFile(options_.config_path);
  if (!next.ok()) return reject(next.status().message());
  if (MessageDifferencer::Equals(*next, config_)) {
    response.set_applied(true);
    response.set_config_generation(generation_.load());
    return response;
  }
  absl::StatusOr<Policy> policy = Policy::Create(*next);
  if (!policy.ok()) return reject(policy.status().message());

  std::map<std::string, const v1::Tenant*> before, after;
  for (const v1::Tenant& t : config_.tenants()) before[t.name()] = &t;
  for (const v1::Tenant& t : next->tenants()) after[t.name()] = &t;
  std::set<std::string> added, removed, changed;
  for (const auto& [name, t] : after) {
    auto it = before.find(name);
    if (it == before.end()) {
      added.insert(name);
    } else if (!MessageDifferencer::Equals(*it->second, *t)) {
      changed.insert(name);
    }
  }
  for (const auto& [name, t] : before) {
    if (!after.contains(name)) removed.insert(name);
  }

  // Order: the fetcher knows new tenants before anyone can ask for them; the
  // policy changes before removed tenants' entries go, so no caller re-creates
  // one in between.
  fetcher_->UpdateTenants(Tenants(*next));
  auto shared_policy = std::make_shared<const Policy>(*std::move(policy));
  token_service_->SetPolicy(shared_policy);
  admin_service_->SetPolicy(shared_policy);
  for (const std::string& t : removed) cache_->RemoveTenant(t);
  for (const std::string& t : changed) cache_->RenewTenantNow(t);
  std::set<std::string> to_prefetch = added;
  to_prefetch.insert(changed.begin(), changed.end());
  if (!to_prefetch.empty()) PrefetchDefaults(*shared_policy, to_prefetch);

  const std::vector<std::string> restart = RestartRequired(config_, *next);
  config_ = *std::move(next);
  const int64_t generation = generation_.fetch_add(1) + 1;
  {
    MutexLock progress(&progress_mu_);
    progress_cv_.SignalAll();
  }
  if (watcher_ != nullptr) WatchFilesLocked();
  metrics_->RecordReload(true, generation);

  response.set_applied(true);
  response.set_config_generation(generation);
  for (const auto& f : restart) response.add_restart_required(f);
  for (const auto& t : added) response.add_tenants_added(t);
  for (const auto& t : removed) response.add_tenants_removed(t);
  for (const auto& t : changed) response.add_tenants_changed(t);
  LogInfo("config reloaded",
          {{"generation", generation},
           {"tenants_added", absl::StrJoin(added, ",")},
           {"tenants_removed", absl::StrJoin(removed, ",")},
           {"tenants_changed", absl::StrJoin(changed, ",")}});
  if (!restart.empty()) {
    LogWarning("config fields changed that take effect only after a restart",
               {{"fields", absl::StrJoin(restart, ",")}});
  }
  return response;
}

bool BrokerServer::WaitForGeneration(int64_t n, absl::Duration timeout) {
  MutexLock lock(&progress_mu_);
  return progress_cv_.WaitUntil(&progress_mu_, absl::Now() + timeout,
                                [&] { return generation_.load() >= n; });
}

bool BrokerServer::WaitForFetches(int64_t n, absl::Duration timeout) {
  MutexLock lock(&progress_mu_);
  return progress_cv_.WaitUntil(
      &progress_mu_, absl::Now() + timeout,
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(progress_mu_) {
        return fetches_done_ >= n;
      });
}

bool BrokerServer::WaitUntilReady(absl::Duration timeout) {
  MutexLock lock(&progress_mu_);
  // OnFetchDone updates readiness before it signals progress_cv_.
  return progress_cv_.WaitUntil(&progress_mu_, absl::Now() + timeout,
                                [&] { return health_->serving(); });
}

int64_t BrokerServer::fetches_done() const {
  MutexLock lock(&progress_mu_);
  return fetches_done_;
}

BrokerServer::~BrokerServer() { Shutdown(); }

void BrokerServer::Shutdown() {
  {
    MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  watcher_.reset();  // no reload during the drain
  if (server_ == nullptr) {  // Start() failed half-way
    if (health_server_ != nullptr) health_server_->Shutdown();
    if (metrics_ != nullptr) metrics_->StopServing();
    if (fetcher_ != nullptr) fetcher_->Shutdown();
    if (cache_ != nullptr) cache_->Shutdown();
    return;
  }
  LogInfo("broker draining",
          {{"grace_period",
            absl::FormatDuration(settings_.shutdown_grace_period)}});
  {
    MutexLock lock(&ready_mu_);
    draining_ = true;
  }
  health_->SetServing(false);
  health_->EndWatches();
  token_service_->EndWatches();

  // Calls admitted before now finish normally until the grace period ends
  // (a GetToken waiting for Treezor gets its token when the fetch completes).
  // Then the cache answers whoever still waits UNAVAILABLE ("shutting
  // down"); gRPC's own hard cancel comes kAnswerMargin later, so that those
  // answers are written first and no admitted call sees CANCELLED.
  constexpr absl::Duration kAnswerMargin = absl::Seconds(1);
  const absl::Time grace_end = absl::Now() + settings_.shutdown_grace_period;
  Mutex mu;
  CondVar cv;
  bool drained = false;
  std::thread drainer([&] {
    server_->Shutdown(absl::ToChronoTime(grace_end + kAnswerMargin));
    MutexLock lock(&mu);
    drained = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    cv.WaitUntil(&mu, grace_end, [&drained] { return drained; });
  }
  // Requests to Treezor still running are aborted, so a hanging Treezor
  // cannot hold the exit past the grace period by its request timeout.
  fetcher_->Shutdown();
  cache_->Shutdown();
  drainer.join();
  if (health_server_ != nullptr) health_server_->Shutdown();
  server_->Wait();
  // Last: metrics are scraped during the drain, and the exposer must stop
  // before the cache and services its scrape reads are destroyed.
  metrics_->StopServing();
  LogInfo("broker stopped");
}

}  // namespace treezor::broker
