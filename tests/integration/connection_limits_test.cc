// Connection limits (issue 11 item 1) against the real broker on loopback:
// the TLS handshake timeout, the per-connection stream cap, the maximum
// connection age (and a client-CA rotation reaching old connections), the
// idle timeout, keepalive enforcement, the memory quota, and the plaintext
// probe port (health Check only, its own small limits). Each test configures
// short limits and waits on conditions — a socket's EOF, a channel leaving
// READY, an RPC's deadline — never on sleeps; every wait is bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "tests/testing/broker_harness.h"
#include "tests/testing/metrics_text.h"
#include "tests/testing/status_matchers.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

namespace treezor::broker {
namespace {

using ::testing::HasSubstr;
using testing::LogCapture;
using testing::SampleValue;
using testing::BrokerHarness;
using HealthResponse = grpc::health::v1::HealthCheckResponse;

// Upper bound on anything that should happen within the configured limits,
// with slack for a loaded 2-core machine.
constexpr absl::Duration kSlack = absl::Seconds(8);
constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// A plain TCP connection to the broker that the test drives byte by byte.
class RawConnection {
 public:
  // From `source` (another loopback address plays another peer: on Linux
  // all of 127.0.0.0/8 is local) to 127.0.0.1:`port`.
  explicit RawConnection(int port, const char* source = "127.0.0.1") {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, source, &from.sin_addr);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        fd_ >= 0 &&
        bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0 &&
        connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Neither closed nor reset by the peer, as of now (no waiting); data it
  // sent (a plaintext gRPC server's SETTINGS) does not count.
  bool open() const {
    pollfd p{fd_, POLLRDHUP, 0};
    return poll(&p, 1, 0) == 0 ||
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0;
  }
  // Waits until the peer closes the connection (EOF or reset), discarding
  // whatever it sends first. False if it is still open at `deadline`.
  bool WaitForClose(absl::Time deadline) {
    char buf[4096];
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      pollfd p{fd_, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready <= 0) continue;
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;  // EOF, or reset
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// The first bytes of a TLS 1.2 ClientHello announcing 512 bytes, of which
// only these few arrive.
std::string HalfAClientHello() {
  std::string hello("\x16\x03\x01\x02\x00"  // record: 512 bytes
                    "\x01\x00\x01\xfc"      // ClientHello, 508
                    "\x03\x03",               // TLS 1.2
                    11);
  hello.append(32, '\x42');                            // "random"
  return hello;
}

// A call that the server has seen begin (headers sent) but whose request
// never arrives: it holds one of the connection's stream slots until it is
// cancelled. Method names need not be streaming ones — a unary handler waits
// for its request just the same.
class HeldStream final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  HeldStream(grpc::Channel& channel, const std::string& method) {
    grpc::GenericStub stub(
        std::shared_ptr<grpc::Channel>(&channel, [](auto*) {}));
    stub.PrepareBidiStreamingCall(&ctx_, method, grpc::StubOptions(), this);
    StartCall();
  }
  ~HeldStream() override {
    ctx_.TryCancel();
    MutexLock lock(&mu_);
    cv_.WaitUntil(&mu_, absl::Now() + kRpcTimeout,
                  [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; });
  }
  void OnDone(const grpc::Status&) override {
    MutexLock lock(&mu_);
    done_ = true;
    cv_.SignalAll();
  }

 private:
  grpc::ClientContext ctx_;
  Mutex mu_;
  CondVar cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

class ConnectionLimitsTest : public ::testing::Test {
 protected:
  void StartBroker(const std::string& limits_json,
                   std::function<void(v1::BrokerConfig&)> edit = nullptr) {
    BrokerHarness::Options options;
    options.extra_config = absl::StrCat(R"("limits": {)", limits_json, "},");
    options.edit_validated_config = std::move(edit);
    harness_ = std::make_unique<BrokerHarness>(std::move(options));
    ASSERT_OK(harness_->Start());
    ASSERT_TRUE(harness_->broker().progress().WaitUntilReady(kRpcTimeout));
  }

  grpc::Status GetToken(grpc::Channel& channel,
                        absl::Duration timeout = kRpcTimeout,
                        bool wait_for_ready = false) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(timeout));
    ctx.set_wait_for_ready(wait_for_ready);
    v1::GetTokenRequest request;
    request.set_tenant("acme");
    v1::GetTokenResponse response;
    return v1::TokenService::NewStub(
               std::shared_ptr<grpc::Channel>(&channel, [](auto*) {}))
        ->GetToken(&ctx, request, &response);
  }

  std::unique_ptr<BrokerHarness> harness_;
};

// N connections that never finish their TLS handshake are closed by the
// broker once the handshake timeout passes (gRPC's default is 120 s).
TEST_F(ConnectionLimitsTest, HalfFinishedTlsHandshakesAreClosedAtTheTimeout) {
  constexpr absl::Duration kHandshakeTimeout = absl::Seconds(1);
  StartBroker(R"("handshakeTimeout": "1s")");
  constexpr int kConnections = 20;
  const absl::Time start = absl::Now();
  std::vector<std::unique_ptr<RawConnection>> connections;
  for (int i = 0; i < kConnections; ++i) {
    connections.push_back(
        std::make_unique<RawConnection>(harness_->broker().port()));
    ASSERT_TRUE(connections.back()->connected());
    ASSERT_TRUE(connections.back()->Send(HalfAClientHello()));
  }
  // A legitimate caller is served meanwhile.
  EXPECT_TRUE(GetToken(*harness_->Channel("payments")).ok());
  for (auto& c : connections) {
    ASSERT_TRUE(c->WaitForClose(start + kHandshakeTimeout + kSlack))
        << "a half-open handshake outlived the handshake timeout";
  }
  // Closed by the timeout, not by anything sooner.
  EXPECT_GE(absl::Now() - start, kHandshakeTimeout);
}

// More streams than the per-connection cap on one channel: the extra call
// waits (here until its deadline) while the others are served, and goes
// through once a stream ends.
TEST_F(ConnectionLimitsTest, StreamsBeyondThePerConnectionCapWait) {
  StartBroker(R"("maxConcurrentStreams": 3)");
  auto channel = harness_->Channel("payments");
  auto stub = v1::TokenService::NewStub(channel);
  struct Watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::GetTokenResponse>> reader;
  };
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i < 3; ++i) {
    auto w = std::make_unique<Watch>();
    w->ctx.set_deadline(In(kRpcTimeout + kSlack));
    v1::WatchTokenRequest request;
    request.set_tenant("acme");
    w->reader = stub->WatchToken(&w->ctx, request);
    v1::GetTokenResponse first;
    ASSERT_TRUE(w->reader->Read(&first)) << "watch " << i << " not served";
    watches.push_back(std::move(w));
  }
  // A fourth stream on the same connection waits for a free slot.
  EXPECT_EQ(GetToken(*channel, absl::Milliseconds(500)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // Another connection is not affected.
  EXPECT_TRUE(GetToken(*harness_->Channel("payments")).ok());
  // One stream ends: the next call gets its slot.
  watches[0]->ctx.TryCancel();
  watches[0]->reader->Finish();
  EXPECT_TRUE(GetToken(*channel).ok());
  for (size_t i = 1; i < watches.size(); ++i) {
    watches[i]->ctx.TryCancel();
    watches[i]->reader->Finish();
  }
}

// A connection is sent GOAWAY at its maximum age (gRPC jitters it by
// ±10 %), and a stream still open on it ends when the grace period after
// that is over.
TEST_F(ConnectionLimitsTest, ConnectionsAreClosedAtTheirMaximumAgePlusGrace) {
  constexpr absl::Duration kAge = absl::Seconds(1);
  constexpr absl::Duration kGrace = absl::Seconds(1);
  StartBroker(R"("maxConnectionAge": "1s", "maxConnectionAgeGrace": "1s")");
  // An idle connection: GOAWAY at its age, then it closes (no call to wait
  // for): the channel leaves READY.
  auto idle = harness_->Channel("payments");
  const absl::Time idle_start = absl::Now();
  ASSERT_TRUE(GetToken(*idle).ok());
  ASSERT_EQ(idle->GetState(false), GRPC_CHANNEL_READY);
  ASSERT_TRUE(idle->WaitForStateChange(GRPC_CHANNEL_READY,
                                       In(kAge * 1.1 + kSlack)));
  EXPECT_GE(absl::Now() - idle_start, kAge * 0.9);

  // A connection with a watch stream open: the stream ends after age +
  // grace, and the client reconnects.
  auto busy = harness_->Channel("payments");
  auto stub = v1::TokenService::NewStub(busy);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(kAge + kGrace + kSlack));
  v1::WatchTokenRequest request;
  request.set_tenant("acme");
  const absl::Time busy_start = absl::Now();
  auto reader = stub->WatchToken(&ctx, request);
  v1::GetTokenResponse token;
  ASSERT_TRUE(reader->Read(&token));
  EXPECT_FALSE(reader->Read(&token));
  const grpc::Status ended = reader->Finish();
  const absl::Duration lived = absl::Now() - busy_start;
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE)
      << ended.error_message();
  EXPECT_GE(lived, kAge * 0.9 + kGrace);
  EXPECT_LT(lived, kAge * 1.1 + kGrace + kSlack);
  EXPECT_TRUE(GetToken(*busy).ok());  // a new connection
}

// After the client CA is rotated, a connection opened under the old CA is
// served until its maximum age, then no more: the client's new handshake
// is refused. (Without a maximum age it would be served for as long as the
// client keeps it.)
TEST_F(ConnectionLimitsTest, ClientCaRotationReachesOldConnectionsWithinMaxAge) {
  constexpr absl::Duration kAge = absl::Seconds(3);
  constexpr absl::Duration kGrace = absl::Seconds(1);
  StartBroker(R"("maxConnectionAge": "3s", "maxConnectionAgeGrace": "1s")");
  auto old_channel = harness_->Channel("payments");
  const absl::Time connected = absl::Now();
  ASSERT_TRUE(GetToken(*old_channel).ok());

  harness_->RotateClientCa("stranger");
  // The established connection needs no new handshake: still served.
  EXPECT_TRUE(GetToken(*old_channel).ok());
  // The broker now trusts the new CA (its certificate provider re-reads the
  // file every serverTls.refreshInterval, 1 s here): a caller with a
  // certificate from it is served once its channel's retries get through.
  EXPECT_TRUE(GetToken(*harness_->Channel("stranger"), kRpcTimeout,
                       /*wait_for_ready=*/true)
                  .ok());

  // The old connection gets GOAWAY at its age; its next handshake presents
  // a certificate the new CA did not sign.
  ASSERT_TRUE(old_channel->WaitForStateChange(
      GRPC_CHANNEL_READY, absl::ToChronoTime(connected + kAge * 1.1 + kGrace +
                                             kSlack)))
      << "the old connection was still served";
  EXPECT_GE(absl::Now() - connected, kAge * 0.9);
  EXPECT_EQ(GetToken(*old_channel).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// A caller whose certificate expires is served on its open connection
// until the connection's maximum age, then no more: the next handshake
// presents an expired certificate. The certificate is valid for the first
// 5 s after it is issued; the connection's age (6 s, less gRPC's 10 %
// jitter) ends after that, whenever the connection was made.
TEST_F(ConnectionLimitsTest, ExpiredCallerCertificateIsRefusedWithinMaxAge) {
  constexpr absl::Duration kAge = absl::Seconds(6);
  constexpr absl::Duration kGrace = absl::Seconds(1);
  BrokerHarness::Options options;
  options.extra_config =
      R"("limits": {"maxConnectionAge": "6s", "maxConnectionAgeGrace": "1s"},)";
  options.extra_certificates = {
      {"expiring",
       {.uri_sans = {"spiffe://corp/payments"},
        .validity = absl::Seconds(6),
        .not_before_offset = absl::Seconds(-1)}}};
  const absl::Time issued = absl::Now();
  harness_ = std::make_unique<BrokerHarness>(std::move(options));
  ASSERT_OK(harness_->Start());
  ASSERT_TRUE(harness_->broker().progress().WaitUntilReady(kRpcTimeout));
  const absl::Time expires = issued + absl::Seconds(5);

  auto channel = harness_->Channel("expiring");
  const absl::Time connected = absl::Now();
  ASSERT_LT(connected, expires) << "the machine took the whole validity";
  ASSERT_TRUE(GetToken(*channel).ok()) << "served while the certificate is valid";
  // The connection outlives the certificate, then is aged out.
  ASSERT_TRUE(channel->WaitForStateChange(
      GRPC_CHANNEL_READY, In(kAge * 1.1 + kGrace + kSlack)))
      << "the connection of an expired certificate was still served";
  EXPECT_GE(absl::Now(), expires);
  const grpc::Status refused = GetToken(*channel, absl::Seconds(3));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.error_message();
  // Another caller, with a valid certificate, is not affected.
  EXPECT_TRUE(GetToken(*harness_->Channel("payments")).ok());
}

// A connection without a call for the idle time is closed; one with a
// stream open is not idle.
TEST_F(ConnectionLimitsTest, IdleConnectionsAreClosedAfterMaxIdle) {
  constexpr absl::Duration kIdle = absl::Seconds(1);
  StartBroker(R"("maxConnectionIdle": "1s")");
  auto busy = harness_->Channel("payments");
  grpc::ClientContext ctx;
  v1::WatchTokenRequest request;
  request.set_tenant("acme");
  auto reader = v1::TokenService::NewStub(busy)->WatchToken(&ctx, request);
  v1::GetTokenResponse token;
  ASSERT_TRUE(reader->Read(&token));

  auto idle = harness_->Channel("payments");
  ASSERT_TRUE(GetToken(*idle).ok());
  const absl::Time last_call = absl::Now();
  ASSERT_TRUE(idle->WaitForStateChange(GRPC_CHANNEL_READY, In(kIdle + kSlack)))
      << "an idle connection outlived the idle timeout";
  EXPECT_GE(absl::Now() - last_call, kIdle * 0.9);
  // The watch's connection lived through the same time, and longer.
  EXPECT_FALSE(busy->WaitForStateChange(GRPC_CHANNEL_READY, In(kIdle)));
  EXPECT_EQ(busy->GetState(false), GRPC_CHANNEL_READY);
  ctx.TryCancel();
  reader->Finish();
}

// The plaintext probe port answers Check as the mTLS port does, and refuses
// Watch (a stream an anonymous peer could hold open); Watch stays on the mTLS
// port.
TEST_F(ConnectionLimitsTest, ProbePortServesCheckAndRefusesWatch) {
  StartBroker("");
  for (auto channel : {harness_->HealthChannel(), harness_->Channel("payments")}) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(In(kRpcTimeout));
    grpc::health::v1::HealthCheckRequest request;
    HealthResponse response;
    ASSERT_TRUE(stub->Check(&ctx, request, &response).ok());
    EXPECT_EQ(response.status(), HealthResponse::SERVING);
  }
  {
    auto stub = grpc::health::v1::Health::NewStub(harness_->HealthChannel());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(kRpcTimeout));
    auto reader = stub->Watch(&ctx, grpc::health::v1::HealthCheckRequest());
    HealthResponse response;
    EXPECT_FALSE(reader->Read(&response));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  {
    auto stub = grpc::health::v1::Health::NewStub(harness_->Channel("payments"));
    grpc::ClientContext ctx;
    ctx.set_deadline(In(kRpcTimeout));
    auto reader = stub->Watch(&ctx, grpc::health::v1::HealthCheckRequest());
    HealthResponse response;
    ASSERT_TRUE(reader->Read(&response));
    EXPECT_EQ(response.status(), HealthResponse::SERVING);
    ctx.TryCancel();
    reader->Finish();
  }
}

// The probe port's stream cap: with its streams taken, one more Check on the
// same connection waits; another connection is served.
TEST_F(ConnectionLimitsTest, ProbePortCapsStreamsPerConnection) {
  StartBroker(R"("healthMaxConcurrentStreams": 2)");
  auto check = [](grpc::Channel& channel, absl::Duration timeout) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(timeout));
    HealthResponse response;
    return grpc::health::v1::Health::NewStub(
               std::shared_ptr<grpc::Channel>(&channel, [](auto*) {}))
        ->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response);
  };
  auto channel = harness_->HealthChannel();
  // Connected, and the server's SETTINGS (the cap) known to the client.
  ASSERT_TRUE(check(*channel, kRpcTimeout).ok());
  auto first = std::make_unique<HeldStream>(*channel, "/grpc.health.v1.Health/Check");
  auto second = std::make_unique<HeldStream>(*channel, "/grpc.health.v1.Health/Check");
  EXPECT_EQ(check(*channel, absl::Milliseconds(500)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(check(*harness_->HealthChannel(), kRpcTimeout).ok());
  first.reset();  // a slot frees up
  EXPECT_TRUE(check(*channel, kRpcTimeout).ok());
}

// An idle connection to the probe port is closed after its own (short)
// idle timeout.
TEST_F(ConnectionLimitsTest, ProbePortClosesIdleConnections) {
  constexpr absl::Duration kIdle = absl::Seconds(1);
  StartBroker(R"("healthMaxConnectionIdle": "1s")");
  auto channel = harness_->HealthChannel();
  grpc::ClientContext ctx;
  ctx.set_deadline(In(kRpcTimeout));
  HealthResponse response;
  ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel)
                  ->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response)
                  .ok());
  const absl::Time last_call = absl::Now();
  ASSERT_TRUE(channel->WaitForStateChange(GRPC_CHANNEL_READY, In(kIdle + kSlack)))
      << "an idle probe connection outlived its idle timeout";
  EXPECT_GE(absl::Now() - last_call, kIdle * 0.9);
}

// Keepalive enforcement: a client pinging without calls is told to go away
// (GOAWAY "too_many_pings") after its strikes, so its connection ends.
// gRPC's defaults already behave so; the test guards that the broker's
// arguments (no pings without calls, 2 strikes) keep it. That the configured
// values reach the builder is server_options_test's job.
TEST_F(ConnectionLimitsTest, ClientsPingingWithoutCallsAreSentAway) {
  StartBroker(R"("minPingInterval": "10s")");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 100);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, 100);
  auto pinger = harness_->Channel("payments", args);
  ASSERT_TRUE(GetToken(*pinger).ok());
  ASSERT_TRUE(pinger->WaitForStateChange(GRPC_CHANNEL_READY, In(kSlack)))
      << "a client pinging every 100 ms without calls kept its connection";
}

// The memory quota reaches gRPC. gRPC 1.51 does not refuse connections at
// accept under memory pressure (later releases do); what it does when the
// quota is exhausted is reclaim: connections without a stream are sent
// GOAWAY ("send goaway to free memory") and streams are cancelled ("Buffers
// full", RESOURCE_EXHAUSTED). Under a 1 KiB quota a watch stream — which the
// default quota keeps open (StreamsBeyondThePerConnectionCapWait) — is
// therefore ended by the broker long before its deadline. (Validation
// refuses quotas that small; the test sets it past validation.)
TEST_F(ConnectionLimitsTest, ExhaustedMemoryQuotaMakesGrpcShedStreams) {
  StartBroker("", [](v1::BrokerConfig& config) {
    config.mutable_limits()->set_memory_bytes(1024);
  });
  auto channel = harness_->Channel("payments");
  const absl::Time start = absl::Now();
  grpc::ClientContext ctx;
  ctx.set_deadline(In(kRpcTimeout + kSlack));
  v1::WatchTokenRequest request;
  request.set_tenant("acme");
  auto reader = v1::TokenService::NewStub(channel)->WatchToken(&ctx, request);
  v1::GetTokenResponse token;
  while (reader->Read(&token)) {
  }
  const grpc::Status ended = reader->Finish();
  EXPECT_THAT(ended.error_code(),
              ::testing::AnyOf(grpc::StatusCode::UNAVAILABLE,
                               grpc::StatusCode::RESOURCE_EXHAUSTED))
      << ended.error_message();
  EXPECT_LT(absl::Now() - start, kRpcTimeout)
      << "the watch stream was kept under an exhausted quota";
}

// The connection caps at accept (connection_admission.h): one peer cannot
// hold more than its share of the port, nobody more than the port's cap;
// a refused connection is reset at once, before any TLS, while admitted
// ones (a legitimate caller's included) are served; closed connections free
// their slots; each refusal is counted and the log names the limit.
TEST_F(ConnectionLimitsTest, ConnectionsBeyondThePeerAndPortCapsAreReset) {
  LogCapture log;
  StartBroker(R"("maxConnections": 6, "maxConnectionsPerPeer": 3,
                 "handshakeTimeout": "60s")");
  const int port = harness_->broker().port();
  // A legitimate caller (127.0.0.1) connects first.
  auto caller = harness_->Channel("payments");
  ASSERT_TRUE(GetToken(*caller).ok());

  // An attacker (127.0.0.2) fills its share with idle TCP connections.
  std::vector<std::unique_ptr<RawConnection>> attacker;
  for (int i = 0; i < 3; ++i) {
    attacker.push_back(std::make_unique<RawConnection>(port, "127.0.0.2"));
    ASSERT_TRUE(attacker.back()->connected());
  }
  RawConnection one_too_many(port, "127.0.0.2");
  ASSERT_TRUE(one_too_many.connected());  // the kernel's handshake
  ASSERT_TRUE(one_too_many.WaitForClose(absl::Now() + kSlack))
      << "a connection past limits.maxConnectionsPerPeer was kept";
  // Accepted in order: the three before it were admitted and are kept.
  for (auto& c : attacker) EXPECT_TRUE(c->open());
  ASSERT_TRUE(log.WaitForLine({"connections refused", "\"port\":\"mtls\"",
                               "limits.maxConnectionsPerPeer",
                               "\"last_peer\":\"127.0.0.2\""},
                              kSlack));
  EXPECT_EQ(SampleValue(harness_->metrics().Render(),
                        R"(treezor_broker_connections_refused_total{limit="peer",port="mtls"})"),
            1);
  // The caller's connection is served throughout.
  EXPECT_TRUE(GetToken(*caller).ok());

  // Two more peers take the port to its cap (1 + 3 + 2 = 6).
  RawConnection third(port, "127.0.0.3");
  RawConnection fourth(port, "127.0.0.4");
  ASSERT_TRUE(third.connected() && fourth.connected());
  RawConnection port_full(port, "127.0.0.5");
  ASSERT_TRUE(port_full.connected());
  ASSERT_TRUE(port_full.WaitForClose(absl::Now() + kSlack))
      << "a connection past limits.maxConnections was kept";
  EXPECT_TRUE(third.open());
  EXPECT_TRUE(fourth.open());
  EXPECT_EQ(SampleValue(harness_->metrics().Render(),
                        R"(treezor_broker_connections_refused_total{limit="port",port="mtls"})"),
            1);
  EXPECT_TRUE(GetToken(*caller).ok());

  // The attacker leaves: its slots are free again for a new caller, who
  // gets through once gRPC's connection retries reach the broker after the
  // admission has seen the sockets closed.
  attacker.clear();
  EXPECT_TRUE(GetToken(*harness_->Channel("payments"), kRpcTimeout,
                       /*wait_for_ready=*/true)
                  .ok());
}

// The plaintext probe port has its own, smaller caps: an anonymous peer
// cannot pile up connections there, and kubelet's Check still gets through.
TEST_F(ConnectionLimitsTest, ProbePortCapsConnectionsPerPeer) {
  StartBroker(R"("healthMaxConnections": 4, "healthMaxConnectionsPerPeer": 2)");
  const int port = harness_->broker().health_port();
  RawConnection first(port, "127.0.0.2");
  RawConnection second(port, "127.0.0.2");
  ASSERT_TRUE(first.connected() && second.connected());
  RawConnection third(port, "127.0.0.2");
  ASSERT_TRUE(third.connected());
  ASSERT_TRUE(third.WaitForClose(absl::Now() + kSlack))
      << "a connection past limits.healthMaxConnectionsPerPeer was kept";
  EXPECT_TRUE(first.open());
  EXPECT_TRUE(second.open());
  EXPECT_EQ(SampleValue(harness_->metrics().Render(),
                        R"(treezor_broker_connections_refused_total{limit="peer",port="health"})"),
            1);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(kRpcTimeout));
  HealthResponse response;
  EXPECT_TRUE(grpc::health::v1::Health::NewStub(harness_->HealthChannel())
                  ->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response)
                  .ok());
  // The mTLS port's counters are its own.
  EXPECT_EQ(SampleValue(harness_->metrics().Render(),
                        R"(treezor_broker_connections_refused_total{limit="peer",port="mtls"})"),
            0);
}

}  // namespace
}  // namespace treezor::broker
