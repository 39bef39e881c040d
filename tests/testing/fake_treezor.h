// An in-process stand-in for Treezor's token endpoint, `POST /oauth/token`,
// over HTTPS with mandatory client certificates (mutual TLS), for tests and
// for the demo's `treezor-simulator`. It speaks what ../shared/TREEZOR.md
// describes: the three request encodings (form-urlencoded, multipart, JSON),
// the client_credentials, password and refresh_token grants (refresh tokens
// rotate: each works once), HS256-signed JWT access tokens that are all
// different, and both error shapes. On top of that it records every request,
// injects faults, and can hold requests at a gate so a test can pile callers
// onto one in-flight fetch.
//
//   TempDir dir;
//   ASSERT_OK_AND_ASSIGN(CertFactory ca, CertFactory::Create(dir.path(),
//   "CA")); ASSERT_OK_AND_ASSIGN(CertPaths server,
//                        ca.Issue("treezor",
//                        CertFactory::ServerLeaf("treezor")));
//   ASSERT_OK_AND_ASSIGN(auto treezor, FakeTreezor::Start({
//       .cert_file = server.cert_file, .key_file = server.key_file,
//       .client_ca_file = ca.ca_cert_file(), .client_secret = "s3cret"}));
//   treezor->PushFault(FakeTreezor::Fault::Status(503));  // next request: 503
//   ... point the broker at treezor->base_url() ...
//   EXPECT_TRUE(treezor->WaitForRequests(2, absl::Seconds(10)));
//
// Everything a test observes (counters, recorded requests) is updated before
// the HTTP answer is written, so it is up to date as soon as the client has
// its answer. Waits are condition waits with a real-time timeout.
//
// Concurrency: httplib serves each connection on a worker of its own pool;
// the default pool (CPPHTTPLIB_THREAD_POOL_COUNT: max(8, cores - 1), fixed
// when Debian compiled the library) is replaced by `worker_threads` workers,
// because held or hanging requests each occupy a worker; and httplib's listen
// backlog of 5 is raised so that a burst of clients connects at once instead
// of having SYNs retried a second later. Connections are not
// kept alive by default: every request is a fresh TLS handshake, so the
// recorded client-certificate CN is the one the client presents now, and
// Stop() never waits out an idle keep-alive connection.
//
// Thread-safety: all public methods are thread-safe. Options::on_answered
// runs on httplib's worker threads, possibly concurrently, with no lock held.
#ifndef TREEZOR_BROKER_TESTS_TESTING_FAKE_TREEZOR_H_
#define TREEZOR_BROKER_TESTS_TESTING_FAKE_TREEZOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"

namespace httplib {
class SSLServer;
struct Request;
struct Response;
}  // namespace httplib

namespace treezor::broker::testing {
namespace fake_treezor_internal {
struct FakeTreezorReply;
}  // namespace fake_treezor_internal

// One request to /oauth/token as the fake saw it.
struct ReceivedRequest {
  // Media type without parameters, lowercase ("multipart/form-data").
  std::string content_type;
  // Decoded body fields (JSON numbers as their literal text). Holds the
  // client's secrets: compare them in tests, never log them.
  std::map<std::string, std::string> params;
  std::string grant_type;
  // Subject CN of the client certificate presented.
  std::string client_cert_cn;

  // Filled in when answered.
  int http_status = 0;   // 0 while in flight, and when dropped
  bool dropped = false;  // the connection was closed without an answer
  // OAuth error code sent (or "fault:<kind>" for an injected fault); empty
  // when a token was issued.
  std::string error;
  // TokenFingerprint() of the access token issued, if any.
  std::string access_token_fingerprint;
};

class FakeTreezor {
 public:
  // What a kEchoRequest fault may quote back: the request as sent.
  struct EchoInput {
    std::map<std::string, std::string> params;  // decoded body fields
    std::string raw_body;                       // the bytes on the wire
  };
  using Echo = std::function<std::string(const EchoInput&)>;

  struct Fault {
    enum Kind {
      kHttpStatus,         // `http_status` (500, 502, 503, 504...), text body
      kTooManyRequests,    // 429 with Retry-After: `retry_after_seconds`
      kHang,               // wait for ReleaseHangs() or `hang`, then answer
                           // normally, or drop if `drop_after_hang`
      kGarbage,            // 200 with a body that is not JSON
      kEmpty200,           // 200 with an empty body
      kDropConnection,     // close the connection without an HTTP answer
      kInvalidClient,      // 401 {"error":"invalid_client",...}
      kTreezorErrorShape,  // 400 {"errors":[{"type":"invalid_request",...}]}
      kBadTokenType,       // 200, a token with "token_type":"MAC"
      kZeroExpiresIn,      // 200, a token with "expires_in":0
      kEchoRequest,        // `http_status` with an OAuth error whose code
                           // and description quote the request (a server
                           // that echoes the secret it was sent)
    };
    Kind kind = kHttpStatus;
    int http_status = 503;
    int retry_after_seconds = 1;
    absl::Duration hang = absl::InfiniteDuration();
    bool drop_after_hang = false;
    // kEchoRequest: the error's description and code (null: "invalid_client"),
    // in RFC 6749's shape, or Treezor's ({"errors":[{"type": code,
    // "message": description}]}) when `treezor_shape`.
    Echo echo_description;
    Echo echo_code;
    bool treezor_shape = false;

    static Fault Status(int http_status);
    static Fault TooManyRequests(int retry_after_seconds);
    static Fault Hang(absl::Duration at_most = absl::InfiniteDuration(),
                      bool then_drop = false);
    static Fault Of(Kind kind);
    // kEchoRequest answered with `http_status` (401 by default).
    static Fault EchoRequest(Echo description, Echo code = nullptr,
                             int http_status = 401);
  };

  struct Options {
    // Server identity, and the CA that client certificates must chain to.
    std::string cert_file;
    std::string key_file;
    std::string client_ca_file;
    std::string host = "127.0.0.1";
    int port = 0;  // 0: chosen by the OS

    std::string client_id = "1234";
    std::string client_secret = "fake-client-secret";
    // The password grant is accepted only when `username` is set.
    std::string username;
    std::string password;

    // expires_in of every token; the JWT's exp claim is
    // iat + token_lifetime + jwt_exp_offset (negative: exp comes first).
    absl::Duration token_lifetime = absl::Hours(1);
    absl::Duration jwt_exp_offset = absl::ZeroDuration();
    Clock* clock = SystemClock::Get();  // for iat/exp; not owned
    std::string signing_key = "fake-treezor-hs256-key";

    int worker_threads = 32;
    bool keep_alive = false;
    // Called once per request to /oauth/token after it is answered (or
    // dropped), e.g. to log it.
    std::function<void(const ReceivedRequest&)> on_answered;
  };

  // Binds, starts serving on a thread of its own and returns once serving.
  static absl::StatusOr<std::unique_ptr<FakeTreezor>> Start(Options options);

  ~FakeTreezor();  // Stop()s
  FakeTreezor(const FakeTreezor&) = delete;
  FakeTreezor& operator=(const FakeTreezor&) = delete;

  // Releases held and hanging requests (they are then answered normally, or
  // dropped if so told), stops listening and joins the server's threads.
  // Idempotent.
  void Stop();

  int port() const { return port_; }
  std::string base_url() const;  // "https://127.0.0.1:<port>" (the bound address)

  // --- Fault injection. The queue is consumed one fault per request, in
  // arrival order after the gate; the persistent fault (if any) applies
  // whenever the queue is empty. Faults replace the normal answer entirely
  // (no credential check, no refresh-token rotation), except kHang which
  // only delays it.
  void PushFault(Fault fault) ABSL_LOCKS_EXCLUDED(mu_);
  void SetPersistentFault(std::optional<Fault> fault) ABSL_LOCKS_EXCLUDED(mu_);
  // Lets every request hanging now go on.
  void ReleaseHangs() ABSL_LOCKS_EXCLUDED(mu_);
  // True once `n` requests are hanging at the same time.
  bool WaitForHanging(int n, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- The gate: while held, requests wait (having been counted and
  // recorded) until ReleaseRequests().
  void HoldRequests() ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseRequests() ABSL_LOCKS_EXCLUDED(mu_);
  // True once `n` requests are waiting at the gate.
  bool WaitForHeld(int n, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Credentials and tokens.
  void SetClientSecret(std::string secret) ABSL_LOCKS_EXCLUDED(mu_);
  void SetTokenLifetime(absl::Duration lifetime) ABSL_LOCKS_EXCLUDED(mu_);
  void SetJwtExpOffset(absl::Duration offset) ABSL_LOCKS_EXCLUDED(mu_);
  // Makes every refresh token issued so far unusable (as when Treezor's
  // month-long refresh chain ends).
  void InvalidateRefreshTokens() ABSL_LOCKS_EXCLUDED(mu_);

  // --- Observation.
  int request_count() const ABSL_LOCKS_EXCLUDED(mu_);
  // Tokens issued by a grant (faults' answers are not counted).
  int token_count() const ABSL_LOCKS_EXCLUDED(mu_);
  // Most requests ever inside the handler at once (held ones included).
  int max_in_flight() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<ReceivedRequest> requests() const ABSL_LOCKS_EXCLUDED(mu_);
  // True once `n` requests have arrived (answered or not).
  bool WaitForRequests(int n, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // True once `n` requests for which `match` holds have arrived (answered or
  // not; a request held at the gate has arrived). Lets a test wait for *its*
  // request rather than for any, e.g. a start-up prefetch.
  bool WaitForRequestsWhere(int n,
                            std::function<bool(const ReceivedRequest&)> match,
                            absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // `match` for WaitForRequestsWhere: the request's `scope` parameter is
  // `scope` ("" matches a request without one).
  static std::function<bool(const ReceivedRequest&)> WithScope(
      std::string scope);
  std::string last_access_token() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string last_refresh_token() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Reply = fake_treezor_internal::FakeTreezorReply;
  using Params = std::map<std::string, std::string>;

  explicit FakeTreezor(Options options);
  absl::Status Listen();
  absl::Status RunListener();

  void HandleToken(const httplib::Request& req, httplib::Response& res)
      ABSL_LOCKS_EXCLUDED(mu_);
  size_t Admit(ReceivedRequest request) ABSL_LOCKS_EXCLUDED(mu_);
  void WaitAtGate() ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<Fault> TakeFault() ABSL_LOCKS_EXCLUDED(mu_);
  // Returns when the hang ends.
  void Hang(absl::Duration at_most) ABSL_LOCKS_EXCLUDED(mu_);
  Reply Respond(const absl::StatusOr<Params>& params,
                absl::string_view raw_body, const std::optional<Fault>& fault)
      ABSL_LOCKS_EXCLUDED(mu_);
  Reply FaultReply(const Fault& fault, const EchoInput& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  Reply Grant(const Params& params) ABSL_LOCKS_EXCLUDED(mu_);
  Reply ClientCredentialsGrantLocked(const Params& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply PasswordGrantLocked(const Params& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply RefreshTokenGrantLocked(const Params& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ClientAuthenticatedLocked(const Params& params) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply IssueTokenLocked(const Params& params, bool with_refresh_token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A token answer's body with a fresh JWT (stored in `access_token`).
  std::string TokenBodyLocked(const Params& params,
                              absl::string_view token_type, int64_t expires_in,
                              std::string* access_token,
                              absl::string_view refresh_token = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string MakeJwtLocked(const std::string& scope)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewOpaqueIdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ReceivedRequest Finish(size_t index, const Reply& reply)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  const std::string instance_id_;  // random, so ids differ across restarts
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread listener_;
  std::atomic<bool> listener_exited_{false};
  std::once_flag stop_once_;
  int port_ = 0;

  mutable Mutex mu_;
  mutable CondVar cv_;  // signalled on every change of the state below
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string client_secret_ ABSL_GUARDED_BY(mu_);
  absl::Duration token_lifetime_ ABSL_GUARDED_BY(mu_);
  absl::Duration jwt_exp_offset_ ABSL_GUARDED_BY(mu_);
  std::deque<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::optional<Fault> persistent_fault_ ABSL_GUARDED_BY(mu_);
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  int hanging_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hang_release_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int token_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_token_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> live_refresh_tokens_ ABSL_GUARDED_BY(mu_);
  std::string last_access_token_ ABSL_GUARDED_BY(mu_);
  std::string last_refresh_token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_FAKE_TREEZOR_H_
