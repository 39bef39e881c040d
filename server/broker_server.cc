#include "server/broker_server.h"

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_callback_pin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/config.h"
#include "server/logging.h"
#include "server/refusal_reporter.h"
#include "server/server_credentials.h"
#include "server/server_options.h"

namespace treezor::broker {
namespace {

constexpr char kTokenServiceName[] = "treezor.broker.v1.TokenService";

std::vector<v1::Tenant> Tenants(const v1::BrokerConfig& config) {
  return {config.tenants().begin(), config.tenants().end()};
}

}  // namespace

// Fans the cache's events out to metrics, readiness and progress.
class BrokerServer::CacheEvents final : public TokenCache::Observer {
 public:
  CacheEvents(BrokerMetrics* metrics, Readiness* readiness,
              BrokerProgress* progress)
      : metrics_(metrics), readiness_(readiness), progress_(progress) {}
  void OnHit() override { metrics_->OnHit(); }
  void OnMiss(bool joined) override { metrics_->OnMiss(joined); }
  void OnFetchDone(const CacheKey& key,
                   const TokenCache::FetchReport& report) override {
    metrics_->OnFetchDone(key, report);
    readiness_->OnFetchDone(key);
    // Last, so whoever waits on the count sees readiness already updated.
    progress_->FetchDone();
  }
  void OnEntryDropped(const CacheKey& key) override {
    metrics_->OnEntryDropped(key);
  }

 private:
  BrokerMetrics* const metrics_;
  Readiness* const readiness_;
  BrokerProgress* const progress_;
};

// What a config reload acts on: the broker's parts.
class BrokerServer::ReloadTarget final : public ConfigReloader::Target {
 public:
  explicit ReloadTarget(BrokerServer* broker) : broker_(broker) {}

  void UpdateTenants(const v1::BrokerConfig& config) override {
    broker_->fetcher_->UpdateTenants(Tenants(config));
  }
  void SetPolicy(std::shared_ptr<const Policy> policy) override {
    broker_->token_service_->SetPolicy(policy);
    broker_->admin_service_->SetPolicy(std::move(policy));
  }
  void RemoveTenant(const std::string& tenant) override {
    broker_->cache_->RemoveTenant(tenant);
  }
  void RenewTenantNow(const std::string& tenant) override {
    broker_->cache_->RenewTenantNow(tenant);
  }
  void Prefetch(const Policy& policy,
                const std::set<std::string>& tenants) override {
    broker_->PrefetchDefaults(policy, tenants);
  }
  void CredentialsChanged(const std::string& tenant) override {
    // Secrets are read at every request, so the next renewal uses the new
    // ones; a tenant waiting out a refusal retries now instead of after its
    // backoff, and a new client certificate needs a new TLS connection.
    broker_->fetcher_->ResetConnections(tenant);
    broker_->cache_->RetryTenantNow(tenant);
  }

 private:
  BrokerServer* const broker_;
};

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Start(
    const v1::BrokerConfig& config, Options options) {
  // gRPC's callback queue outlives every server and channel of this process
  // (common/grpc_callback_pin.h: its teardown races a new server's start).
  PinGrpcCallbackQueue();
  auto policy = Policy::Create(config);
  if (!policy.ok()) return policy.status();

  std::unique_ptr<BrokerServer> broker(new BrokerServer);
  BrokerServer* self = broker.get();
  self->options_ = options;
  self->settings_ = ResolveSettings(config);
  if (options.file_poll_interval.has_value()) {
    self->settings_.file_poll_interval = *options.file_poll_interval;
  }
  const BrokerSettings& settings = self->settings_;

  self->metrics_ = std::make_unique<BrokerMetrics>(options.clock);
  self->health_ = std::make_unique<HealthService>(
      std::vector<std::string>{kTokenServiceName});
  self->probe_health_ =
      std::make_unique<HealthCheckOnlyService>(self->health_.get());
  self->readiness_ =
      std::make_unique<Readiness>(self->health_.get(), &self->progress_);
  self->cache_events_ = std::make_unique<CacheEvents>(
      self->metrics_.get(), self->readiness_.get(), &self->progress_);

  self->fetcher_ = std::make_unique<TreezorOAuthClient>(
      Tenants(config), settings.upstream, options.clock);
  self->cache_ = std::make_unique<TokenCache>(
      self->fetcher_.get(), settings.renewal,
      settings.upstream.max_concurrent_requests,
      TokenCache::Options{.clock = options.clock}, settings.limits);
  self->cache_->SetObserver(self->cache_events_.get());

  auto shared_policy = std::make_shared<const Policy>(*std::move(policy));
  self->token_service_ = std::make_unique<TokenService>(
      self->cache_.get(), shared_policy, options.clock, self->metrics_.get(),
      settings.limits.max_watch_streams_per_caller);
  self->admin_service_ = std::make_unique<AdminService>(
      self->cache_.get(), shared_policy,
      AdminService::Hooks{[self] { return self->Reload(); },
                          [self] { return self->generation(); }},
      options.clock, self->metrics_.get());
  self->metrics_->SetSources(
      {[self] { return self->cache_->Snapshot(); },
       [self] { return self->cache_->fetches_in_flight(); },
       [self] { return self->token_service_->open_watches(); }});

  // Before the servers start: BrokerAdmin.ReloadConfig may come at once.
  self->reload_target_ = std::make_unique<ReloadTarget>(self);
  self->reloader_ = std::make_unique<ConfigReloader>(
      config, self->reload_target_.get(),
      ConfigReloader::Options{.config_path = options.config_path,
                              .file_poll_interval = settings.file_poll_interval,
                              .metrics = self->metrics_.get(),
                              .progress = &self->progress_});

  if (absl::Status s = self->StartServers(config); !s.ok()) return s;

  self->PrefetchDefaults(*shared_policy, {});
  self->reloader_->StartWatching();
  LogInfo("broker started",
          {{"listen_address", config.listen_address()},
           {"port", self->port()},
           {"health_port", self->health_port()},
           {"metrics_port", self->metrics_port()},
           {"tenants", config.tenants_size()},
           {"callers", config.callers_size()},
           {"admins", config.admins_size()}});
  return broker;
}

namespace {

using ExternalConnectionType =
    grpc::ServerBuilder::experimental_type::ExternalConnectionType;

}  // namespace

absl::Status BrokerServer::StartPort(
    absl::string_view field, const std::string& address,
    const GrpcServerOptions& options,
    std::shared_ptr<grpc::ServerCredentials> credentials,
    std::initializer_list<grpc::Service*> services,
    BrokerMetrics::Port metric_port, GrpcPort& out) {
  auto listener = ExternalListener::Bind(address);
  if (!listener.ok()) {
    return absl::UnavailableError(
        absl::StrCat(field, ": ", listener.status().message(),
                     " (address in use or not local?)"));
  }
  out.listener = *std::move(listener);
  out.port = out.listener->port();
  out.admission = std::make_unique<ConnectionAdmission>(options.connections);
  grpc::ServerBuilder builder;
  ApplyServerOptions(options, builder);
  auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
      ExternalConnectionType::FROM_FD, std::move(credentials));
  for (grpc::Service* service : services) builder.RegisterService(service);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(field, ": gRPC could not start on ", address));
  }
  out.listener->Start(
      std::move(acceptor), out.admission.get(),
      RefusalReporter(metrics_.get(), metric_port, options, options_.clock));
  return absl::OkStatus();
}

absl::Status BrokerServer::StartServers(const v1::BrokerConfig& config) {
  auto credentials = MakeServerCredentials(
      config.server_tls(), settings_.server_tls.refresh_interval);
  if (!credentials.ok()) return credentials.status();
  // Reflection describes every service registered with protobuf-generated
  // code, health included (see health_service.h).
  if (absl::Status s = StartPort(
          "listenAddress", config.listen_address(),
          MtlsServerOptions(settings_.limits), *credentials,
          {token_service_.get(), admin_service_.get(), health_.get()},
          BrokerMetrics::Port::kMtls, mtls_port_);
      !s.ok()) {
    return s;
  }
  // What kubelet needs and nothing an anonymous peer can pile up: health
  // Check only, no reflection, small limits (server_options.h).
  if (!config.health_listen_address().empty()) {
    if (absl::Status s = StartPort(
            "healthListenAddress", config.health_listen_address(),
            HealthServerOptions(settings_.limits),
            grpc::InsecureServerCredentials(), {probe_health_.get()},
            BrokerMetrics::Port::kHealth, probe_port_);
        !s.ok()) {
      return s;
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
  readiness_->Expect(keys);
  for (const CacheKey& key : keys) cache_->Prefetch(key);
}

BrokerServer::~BrokerServer() { Shutdown(); }

void BrokerServer::Shutdown() {
  if (shut_down_.exchange(true)) return;
  if (reloader_ != nullptr) reloader_->StopWatching();  // no reload while draining
  // No new connection from here on; those open are drained below. The
  // probe port keeps answering (NOT_SERVING) until the end.
  if (mtls_port_.listener != nullptr) mtls_port_.listener->Stop();
  if (mtls_port_.server == nullptr) {  // Start() failed half-way
    if (probe_port_.listener != nullptr) probe_port_.listener->Stop();
    if (probe_port_.server != nullptr) probe_port_.server->Shutdown();
    if (metrics_ != nullptr) metrics_->StopServing();
    if (fetcher_ != nullptr) fetcher_->Shutdown();
    if (cache_ != nullptr) cache_->Shutdown();
    return;
  }
  LogInfo("broker draining",
          {{"grace_period",
            absl::FormatDuration(settings_.shutdown_grace_period)}});
  readiness_->Drain();
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
    mtls_port_.server->Shutdown(absl::ToChronoTime(grace_end + kAnswerMargin));
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
  if (probe_port_.listener != nullptr) probe_port_.listener->Stop();
  if (probe_port_.server != nullptr) probe_port_.server->Shutdown();
  mtls_port_.server->Wait();
  // Last: metrics are scraped during the drain, and the exposer must stop
  // before the cache and services its scrape reads are destroyed.
  metrics_->StopServing();
  LogInfo("broker stopped");
}

}  // namespace treezor::broker
