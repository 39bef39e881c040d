#include "tests/testing/broker_harness.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "server/logging.h"

namespace treezor::broker::testing {

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return "";
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileOrDie(const std::string& path, absl::string_view content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) ADD_FAILURE() << "cannot write " << tmp;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ADD_FAILURE() << "cannot rename " << tmp << " to " << path;
  }
}

BrokerHarness::BrokerHarness() : BrokerHarness(Options()) {}
BrokerHarness::BrokerHarness(Options options) : options_(std::move(options)) {}

BrokerHarness::~BrokerHarness() {
  StopBroker();
  if (treezor_ != nullptr) treezor_->Stop();
}

void BrokerHarness::StopBroker() {
  std::unique_ptr<BrokerServer> broker;
  {
    MutexLock lock(&broker_mu_);
    broker = std::move(broker_);
  }
  if (broker != nullptr) broker->Shutdown();
}

absl::Status BrokerHarness::Start() {
  auto internal = CertFactory::Create(dir_.path(), "Internal CA");
  if (!internal.ok()) return internal.status();
  internal_ca_.emplace(*std::move(internal));
  auto stranger = CertFactory::Create(dir_.path(), "Stranger CA");
  if (!stranger.ok()) return stranger.status();
  stranger_ca_.emplace(*std::move(stranger));
  auto treezor_ca = CertFactory::Create(dir_.path(), "Treezor CA");
  if (!treezor_ca.ok()) return treezor_ca.status();
  treezor_ca_.emplace(*std::move(treezor_ca));

  struct Leaf {
    std::string name;
    const CertFactory* ca;
    CertFactory::LeafOptions options;
  };
  CertFactory::LeafOptions payments;
  payments.common_name = "payments";
  payments.uri_sans = {"spiffe://corp/payments"};
  CertFactory::LeafOptions cards;
  cards.common_name = "cards-service";
  cards.dns_sans = {"cards.internal"};
  CertFactory::LeafOptions oncall;
  oncall.common_name = "oncall";
  oncall.uri_sans = {"spiffe://corp/oncall"};
  CertFactory::LeafOptions intruder;
  intruder.common_name = "intruder";
  CertFactory::LeafOptions stranger_leaf;
  stranger_leaf.common_name = "payments";  // right name, wrong CA
  stranger_leaf.uri_sans = {"spiffe://corp/payments"};
  const std::vector<Leaf> leaves = {
      {"broker", &*internal_ca_, CertFactory::ServerLeaf("broker")},
      {"payments", &*internal_ca_, payments},
      {"cards", &*internal_ca_, cards},
      {"intruder", &*internal_ca_, intruder},
      {"oncall", &*internal_ca_, oncall},
      {"stranger", &*stranger_ca_, stranger_leaf},
      {"treezor-server", &*treezor_ca_, CertFactory::ServerLeaf("treezor")},
      {"treezor-client", &*treezor_ca_, CertFactory::LeafOptions{.common_name = "broker"}},
  };
  for (const Leaf& leaf : leaves) {
    auto paths = leaf.ca->Issue(leaf.name, leaf.options);
    if (!paths.ok()) return paths.status();
    callers_[leaf.name] = *paths;
  }
  for (const auto& [name, options] : options_.extra_certificates) {
    if (callers_.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("extra certificate \"", name, "\" already exists"));
    }
    auto paths = internal_ca_->Issue(name, options);
    if (!paths.ok()) return paths.status();
    callers_[name] = *paths;
  }

  FakeTreezor::Options t;
  t.cert_file = callers_["treezor-server"].cert_file;
  t.key_file = callers_["treezor-server"].key_file;
  t.client_ca_file = treezor_ca_->ca_cert_file();
  t.client_secret = kClientSecret;
  t.token_lifetime = options_.token_lifetime;
  if (options_.fake_clock) t.clock = &clock_;
  auto treezor = FakeTreezor::Start(t);
  if (!treezor.ok()) return treezor.status();
  treezor_ = *std::move(treezor);
  if (options_.hold_upstream) treezor_->HoldRequests();

  if (absl::Status s = WriteConfig(); !s.ok()) return s;
  absl::StatusOr<v1::BrokerConfig> config = LoadConfigFile(config_path_);
  if (!config.ok()) return config.status();
  if (options_.edit_validated_config) options_.edit_validated_config(*config);
  BrokerServer::Options broker_options;
  if (options_.fake_clock) broker_options.clock = &clock_;
  broker_options.config_path = config_path_;
  broker_options.file_poll_interval = options_.file_poll_interval;
  auto broker = BrokerServer::Start(*config, broker_options);
  if (!broker.ok()) return broker.status();
  {
    MutexLock lock(&broker_mu_);
    broker_ = *std::move(broker);
  }
  if (options_.fake_clock) {
    // The listener outlives a stopped broker: look it up under the lock.
    clock_.AddListener([this] {
      MutexLock lock(&broker_mu_);
      if (broker_ != nullptr) broker_->cache().Wake();
    });
  }
  return absl::OkStatus();
}

void BrokerHarness::RotateClientCa(const std::string& ca) {
  const CertFactory& factory = ca == "stranger" ? *stranger_ca_ : *internal_ca_;
  WriteFileOrDie(client_ca_file(), ReadFileOrDie(factory.ca_cert_file()));
}

absl::Status BrokerHarness::WriteConfig() {
  RotateClientCa("internal");
  WriteFileOrDie(dir_.File("acme.secret"),
                 absl::StrCat(options_.acme_secret, "\n"));
  // The double knows one client; globex reads the same secret from its
  // own file (no trailing newline: trimming is tested with acme).
  WriteFileOrDie(dir_.File("globex.secret"), kClientSecret);
  std::string extra_tenants;
  for (const auto& [name, extra] : options_.extra_tenants) {
    extra_tenants += TenantJson(name, extra);
  }
  config_json_ = RenderConfig(options_.extra_config, options_.acme_extra,
                              extra_tenants, options_.extra_callers);
  config_path_ = dir_.File("broker.json");
  WriteFileOrDie(config_path_, config_json_);
  return absl::OkStatus();
}

std::string BrokerHarness::RenderConfig(const std::string& extra_config,
                                        const std::string& acme_extra,
                                        const std::string& extra_tenants,
                                        const std::string& extra_callers) const {
  const CertPaths& broker = callers_.at("broker");
  const CertPaths& upstream = callers_.at("treezor-client");
  const std::string upstream_tls = absl::StrFormat(
      R"("upstreamTls": {"caFile": "%s", "certFile": "%s", "keyFile": "%s"})",
      treezor_ca_->ca_cert_file(), upstream.cert_file, upstream.key_file);
  return absl::StrFormat(
      R"json({
  "listenAddress": "127.0.0.1:0",
  %s
  %s
  "serverTls": {"certFile": "%s", "keyFile": "%s", "clientCaFile": "%s",
                "refreshInterval": "1s"},
  "shutdownGracePeriod": "%ds",
  %s
  "tenants": [
    {"name": "acme", "baseUrl": "%s", "clientId": "1234",
     "clientSecretFile": "%s", "defaultScopes": ["read_write"],
     %s
     %s},
    %s
    {"name": "globex", "baseUrl": "%s", "clientId": "1234",
     "clientSecretFile": "%s", "allowedScopes": ["read_only"],
     "defaultScopes": ["read_only"],
     %s}
  ],
  "callers": [
    %s
    {"identity": "spiffe://corp/payments", "tenants": ["acme"]},
    {"identity": "cards.internal", "tenants": ["globex"]}
  ],
  "admins": [{"identity": "spiffe://corp/oncall"}]
})json",
      options_.health_port ? R"("healthListenAddress": "127.0.0.1:0",)" : "",
      options_.metrics_port ? R"("metricsListenAddress": "127.0.0.1:0",)" : "",
      broker.cert_file, broker.key_file, client_ca_file(),
      absl::ToInt64Seconds(options_.shutdown_grace_period), extra_config, treezor_->base_url(), dir_.File("acme.secret"), acme_extra,
      upstream_tls, extra_tenants, treezor_->base_url(),
      dir_.File("globex.secret"), upstream_tls, extra_callers);
}

std::string BrokerHarness::TenantJson(const std::string& name,
                                      const std::string& extra) const {
  const CertPaths& upstream = callers_.at("treezor-client");
  return absl::StrFormat(
      R"({"name": "%s", "baseUrl": "%s", "clientId": "1234",
     "clientSecretFile": "%s", %s
     "upstreamTls": {"caFile": "%s", "certFile": "%s", "keyFile": "%s"}},)",
      name, treezor_->base_url(), dir_.File("acme.secret"), extra,
      treezor_ca_->ca_cert_file(), upstream.cert_file, upstream.key_file);
}

std::string BrokerHarness::target() const {
  return absl::StrCat("127.0.0.1:", broker_->port());
}

CertPaths BrokerHarness::CallerFiles(const std::string& caller) const {
  return callers_.at(caller);
}

std::shared_ptr<grpc::Channel> BrokerHarness::Channel(
    const std::string& caller) const {
  return Channel(caller, grpc::ChannelArguments());
}

std::shared_ptr<grpc::Channel> BrokerHarness::Channel(
    const std::string& caller, grpc::ChannelArguments args) const {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFileOrDie(internal_ca_->ca_cert_file());
  if (caller != "none") {
    const CertPaths& files = callers_.at(caller);
    ssl.pem_cert_chain = ReadFileOrDie(files.cert_file);
    ssl.pem_private_key = ReadFileOrDie(files.key_file);
  }
  // A fresh connection per channel, so each test's handshake is its own.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target(), grpc::SslCredentials(ssl), args);
}

std::shared_ptr<grpc::Channel> BrokerHarness::HealthChannel() const {
  grpc::ChannelArguments args;
  // A fresh connection per channel, as Channel() makes.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", broker_->health_port()),
      grpc::InsecureChannelCredentials(), args);
}

}  // namespace treezor::broker::testing
