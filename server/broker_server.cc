#include "server/broker_server.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/config.h"
#include "server/logging.h"
#include "server/server_credentials.h"

namespace treezor::broker {
namespace {

constexpr char kTokenServiceName[] = "treezor.broker.v1.TokenService";

// Applied to every server the broker starts.
void CommonServerOptions(grpc::ServerBuilder& builder) {
  // A port conflict must fail, not silently share traffic with another
  // process (gRPC enables SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerServer>> BrokerServer::Start(
    const v1::BrokerConfig& config, Options options) {
  auto policy = Policy::Create(config);
  if (!policy.ok()) return policy.status();
  auto credentials =
      MakeServerCredentials(config.server_tls(), ServerTlsRefreshInterval(config));
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<BrokerServer> broker(new BrokerServer);
  broker->grace_period_ = ShutdownGracePeriod(config);
  const UpstreamSettings upstream = UpstreamSettingsFromConfig(config);

  TreezorOAuthClient::Options client_options;
  client_options.connect_timeout = upstream.connect_timeout;
  client_options.request_timeout = upstream.request_timeout;
  client_options.clock = options.clock;
  broker->fetcher_ = std::make_unique<TreezorOAuthClient>(
      std::vector<v1::Tenant>(config.tenants().begin(), config.tenants().end()),
      client_options);

  TokenCache::Options cache_options;
  cache_options.renewal = RenewalSettingsFromConfig(config);
  cache_options.max_concurrent_fetches = upstream.max_concurrent_requests;
  cache_options.clock = options.clock;
  broker->cache_ =
      std::make_unique<TokenCache>(broker->fetcher_.get(), cache_options);

  auto shared_policy = std::make_shared<const Policy>(*std::move(policy));
  broker->health_ = std::make_unique<HealthService>(
      std::vector<std::string>{kTokenServiceName});
  broker->token_service_ =
      std::make_unique<TokenService>(broker->cache_.get(), shared_policy);

  // Reflection describes every service registered with protobuf-generated
  // code, health included (see health_service.h).
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  {
    grpc::ServerBuilder builder;
    CommonServerOptions(builder);
    builder.AddListeningPort(config.listen_address(), *credentials,
                             &broker->port_);
    builder.RegisterService(broker->token_service_.get());
    builder.RegisterService(broker->health_.get());
    broker->server_ = builder.BuildAndStart();
    if (broker->server_ == nullptr || broker->port_ == 0) {
      return absl::UnavailableError(absl::StrCat(
          "listenAddress: cannot listen on ", config.listen_address(),
          " (address in use or not local?)"));
    }
  }
  if (!config.health_listen_address().empty()) {
    grpc::ServerBuilder builder;
    CommonServerOptions(builder);
    builder.AddListeningPort(config.health_listen_address(),
                             grpc::InsecureServerCredentials(),
                             &broker->health_port_);
    builder.RegisterService(broker->health_.get());
    broker->health_server_ = builder.BuildAndStart();
    if (broker->health_server_ == nullptr || broker->health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat(
          "healthListenAddress: cannot listen on ",
          config.health_listen_address(), " (address in use or not local?)"));
    }
  }

  for (const auto& [tenant, scopes] : shared_policy->DefaultScopeSets()) {
    broker->cache_->Prefetch(CacheKey{tenant, scopes});
  }
  broker->health_->SetServing(true);
  LogInfo("broker started",
          {{"listen_address", config.listen_address()},
           {"port", broker->port_},
           {"health_port", broker->health_port_},
           {"tenants", config.tenants_size()},
           {"callers", config.callers_size()}});
  return broker;
}

BrokerServer::~BrokerServer() { Shutdown(); }

void BrokerServer::Shutdown() {
  {
    MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (server_ == nullptr) {  // Start() failed half-way
    if (health_server_ != nullptr) health_server_->Shutdown();
    if (cache_ != nullptr) cache_->Shutdown();
    return;
  }
  LogInfo("broker draining",
          {{"grace_period", absl::FormatDuration(grace_period_)}});
  health_->SetServing(false);
  health_->EndWatches();
  token_service_->EndWatches();

  // In-flight GetToken calls waiting on a fetch finish when it does; if the
  // grace period runs out first, the cache answers them UNAVAILABLE so the
  // server's drain can complete.
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace_period_);
  Mutex mu;
  CondVar cv;
  bool drained = false;
  std::thread drainer([&] {
    server_->Shutdown(deadline);
    MutexLock lock(&mu);
    drained = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    const absl::Time until = absl::Now() + grace_period_;
    while (!drained && absl::Now() < until) cv.WaitFor(&mu, until - absl::Now());
  }
  cache_->Shutdown();
  drainer.join();
  if (health_server_ != nullptr) health_server_->Shutdown();
  server_->Wait();
  LogInfo("broker stopped");
}

}  // namespace treezor::broker
