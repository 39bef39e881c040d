#include "server/token_service.h"

#include <array>
#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "google/protobuf/arena.h"
#include "grpc/grpc_security.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "server/peer_identity.h"
#include "server/rpc_audit.h"
#include "server/secret.h"
#include "server/token_messages.h"

namespace treezor::broker {

// What the policy says of one certificate, and the audit line's fields for
// it: derived once per certificate and policy (kept in the certificate's
// PeerIdentityMemo slot, and in the threads' recent ones), not once per call.
struct CallerDecision {
  std::shared_ptr<const Policy> policy;  // the policy it was decided under
  absl::StatusOr<PeerIdentity> peer;
  // The config identities the certificate matches (Policy::MatchCaller), or
  // why it matches none (or why its certificate is refused).
  absl::StatusOr<std::vector<MatchedIdentity>> matched;
  std::string audit_json;  // AuditCallerJson + AuditIdentityJson
};

namespace {

// A thread's few most recent values of one kind, the oldest replaced first:
// a gRPC thread serves a few callers at a time, and they ask again for what
// they just asked for. Each kind keys its slots and bounds their bytes
// itself; a slot holds whatever its key points to, so that an address in it
// cannot be reused by something else while it is there.
template <typename Slot, size_t N>
class ThreadRecent {
 public:
  // The first slot `match` accepts, or nullptr.
  template <typename Match>
  const Slot* Find(Match match) const {
    for (const Slot& slot : slots_) {
      if (match(slot)) return &slot;
    }
    return nullptr;
  }
  // The slot to overwrite: the one written longest ago.
  Slot& Replace() {
    Slot& slot = slots_[next_];
    next_ = (next_ + 1) % N;
    return slot;
  }

 private:
  std::array<Slot, N> slots_{};
  size_t next_ = 0;
};

struct ReleaseAuthContext {
  void operator()(grpc_auth_context* context) const {
    grpc_auth_context_release(context);
  }
};
// A reference to gRPC's auth context of a call. On the server it is its
// connection's (gRPC core shares the handshake's context with every call of
// the connection; the broker installs no AuthMetadataProcessor, which would
// make one per call), so its address names the connection while held.
using AuthContextRef = std::unique_ptr<grpc_auth_context, ReleaseAuthContext>;

// A thread's recent decisions, keyed by the caller's connection: a
// connection's certificate cannot change, so a slot answers for every call
// of that connection under the same policy. A connection whose auth context
// holds more than kMaxThreadAuthContextBytes (its certificate and chain as
// PEM, and their names; a hostile peer's can be tens of KiB) is not kept,
// to bound what each thread holds alive.
constexpr size_t kMaxThreadAuthContextBytes = 16 * 1024;
struct ThreadDecision {
  uint64_t service = 0;  // TokenService::id_; 0: empty
  AuthContextRef connection;
  std::shared_ptr<const CallerDecision> decision;
};
thread_local ThreadRecent<ThreadDecision, 4> thread_decisions;

// A thread's recent granted requests: for one decision (so one caller and
// one policy), a request's exact bytes, the cache key it resolved to, its
// min_ttl and the audit line's tenant and scopes fields. A repeated request
// (a service asking for its token again) is then neither parsed, validated,
// authorized nor formatted again: the same bytes are the same request.
// Only what was granted is kept, never a rejected-token report (it must
// reach the cache as one), only requests up to kMaxThreadRequestBytes, and
// the slot holds its decision, so a later decision (another policy) cannot
// take its address.
constexpr size_t kMaxThreadRequestBytes = 1024;
struct GrantedRequest {
  CacheKey key;
  absl::Duration min_ttl;
  std::string audit_json;  // RpcAudit::TenantScopesJson
};
struct ThreadRequest {
  uint64_t service = 0;  // TokenService::id_; 0: empty
  std::shared_ptr<const CallerDecision> decision;
  std::string wire;  // the GetTokenRequest as received
  std::shared_ptr<const GrantedRequest> granted;
};
thread_local ThreadRecent<ThreadRequest, 4> thread_requests;

// What this thread granted `decision` for the same request bytes, if it
// still has it.
std::shared_ptr<const GrantedRequest> RecentGrant(
    uint64_t service, const CallerDecision* decision, absl::string_view wire) {
  const ThreadRequest* kept =
      thread_requests.Find([&](const ThreadRequest& slot) {
        return slot.service == service && slot.decision.get() == decision &&
               slot.wire == wire;
      });
  return kept == nullptr ? nullptr : kept->granted;
}

void RememberGrant(uint64_t service,
                   std::shared_ptr<const CallerDecision> decision,
                   absl::string_view wire,
                   std::shared_ptr<const GrantedRequest> granted) {
  if (wire.size() > kMaxThreadRequestBytes) return;
  ThreadRequest& slot = thread_requests.Replace();
  slot.service = service;
  slot.decision = std::move(decision);
  slot.wire.assign(wire.data(), wire.size());
  slot.granted = std::move(granted);
}

std::atomic<uint64_t> next_service_id{1};

// The caller's certificate as gRPC verified it; empty without one.
absl::string_view PeerPem(const grpc::AuthContext* auth) {
  return auth == nullptr ? absl::string_view() : PeerCertificatePem(*auth);
}

// What an auth context's properties hold, in bytes.
size_t AuthContextBytes(const grpc::AuthContext& auth) {
  size_t bytes = 0;
  for (const grpc::AuthProperty& p : auth) {
    bytes += p.first.size() + p.second.size();
  }
  return bytes;
}

std::shared_ptr<const CallerDecision> Decide(
    absl::string_view pem, PeerIdentityMemo* identities,
    const std::shared_ptr<const Policy>& policy) {
  std::shared_ptr<const PeerIdentityMemo::Known> known =
      pem.empty() ? identities->anonymous() : identities->FromPem(pem);
  return known->Derived<CallerDecision>(
      [&policy](const CallerDecision& d) { return d.policy == policy; },
      [&]() {
        auto d = std::make_shared<CallerDecision>();
        d->policy = policy;
        d->peer = known->identity();
        d->matched = d->peer.ok() ? policy->MatchCaller(*d->peer)
                                  : absl::StatusOr<std::vector<MatchedIdentity>>(
                                        d->peer.status());
        // A certificate the parser refused is audited like an unknown
        // caller: an empty "caller".
        d->audit_json = AuditCallerJson(d->peer.ok() ? *d->peer : PeerIdentity());
        if (d->matched.ok()) d->audit_json += AuditIdentityJson(d->matched->front());
        return std::shared_ptr<const CallerDecision>(std::move(d));
      });
}

// The scope set the decided caller may have on `tenant`.
absl::StatusOr<ScopeSet> Authorize(
    const CallerDecision& caller, const std::string& tenant,
    const google::protobuf::RepeatedPtrField<std::string>& scopes) {
  if (!caller.matched.ok()) return caller.matched.status();
  const std::vector<std::string> requested(scopes.begin(), scopes.end());
  return caller.policy->Authorize(*caller.matched, tenant, requested);
}

// The request's bytes as one slice: a reference to gRPC's when it arrived in
// one (as a small message does), else a copy. False if they cannot be read.
bool RequestWire(const grpc::ByteBuffer& bytes, grpc::Slice* slice) {
  return bytes.TrySingleSlice(slice).ok() ||
         bytes.DumpToSingleSlice(slice).ok();
}

// A GetTokenRequest parsed from `wire` into `arena`; nullptr if the bytes
// are not one.
const v1::GetTokenRequest* ParseGetTokenRequest(absl::string_view wire,
                                                google::protobuf::Arena* arena) {
  auto* request =
      google::protobuf::Arena::CreateMessage<v1::GetTokenRequest>(arena);
  if (wire.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !request->ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
    return nullptr;
  }
  return request;
}

// Frees a token's serialized response once gRPC and the token let go of it,
// wiping it first (it holds the access token).
void DeleteWiped(void* bytes) {
  auto* s = static_cast<std::string*>(bytes);
  CleanseString(s);
  delete s;
}

// Sets `response` to the GetTokenResponse for `token`, obtained for the cache
// entry `key`, as sent on the wire: serialized once per token, by its first
// answer, and then sent as it is (a reference to the same bytes) by every
// call it answers.
void SetResponseBytes(const CacheKey& key, const CachedToken& token,
                      grpc::ByteBuffer* response) {
  const grpc::Slice& slice = token.derived.Get<grpc::Slice>([&] {
    v1::GetTokenResponse message;
    FillResponse(key, token, &message);
    auto* bytes = new std::string;
    bytes->reserve(message.ByteSizeLong());  // no reallocation: one copy to wipe
    message.SerializeToString(bytes);
    CleanseString(message.mutable_access_token());
    return std::make_shared<const grpc::Slice>(bytes->data(), bytes->size(),
                                               &DeleteWiped, bytes);
  });
  grpc::ByteBuffer bytes(&slice, 1);  // a reference to the slice, no copy
  response->Swap(&bytes);
}

// One GetToken call that must wait for a token (a hit or a refusal is
// answered inline by TokenService::GetToken, without this reactor). Waits for
// the cache without holding a thread; if the
// caller cancels or its deadline passes first, OnCancel removes it from the
// entry's waiters at once (TokenCache::CancelWaiter) instead of leaving it
// parked until Treezor answers.
//
// The call finishes exactly once, through the RpcAudit: the cache's callback
// is the one place that finishes a call that reached the cache (CancelWaiter
// runs it with CANCELLED when the caller went away). OnCancel and the callback may run concurrently on different
// threads, hence mu_. gRPC runs OnDone (which deletes the reactor) only after
// the handler returned, Finish was called and OnCancel returned, so `this`
// outlives every use here; nothing touches `this` after Finish.
class GetTokenReactor final : public grpc::ServerUnaryReactor {
 public:
  // `context`, `response` and `cache` outlive the reactor (gRPC / caller).
  GetTokenReactor(grpc::CallbackServerContext* context, TokenCache* cache,
                  grpc::ByteBuffer* response, RpcAudit audit)
      : context_(context),
        cache_(cache),
        response_(response),
        audit_(std::move(audit)) {}

  // Asks the cache; the answer (or the cancellation) finishes the call.
  void Start(CacheKey key, const TokenCache::GetOptions& options)
      ABSL_LOCKS_EXCLUDED(mu_) {
    key_ = std::move(key);
    const uint64_t waiter = cache_->GetAsync(
        key_, options, [this](absl::StatusOr<TokenCache::TokenPtr> token) {
          Answer(std::move(token));
        });
    bool cancel_now = false;
    {
      MutexLock lock(&mu_);
      waiter_ = waiter;
      // OnCancel ran while GetAsync had not yet returned the id.
      cancel_now = cancelled_ && !finished_ && waiter != 0;
    }
    if (cancel_now) cache_->CancelWaiter(key_, waiter);
  }

  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_) {
    uint64_t waiter = 0;
    {
      MutexLock lock(&mu_);
      cancelled_ = true;
      if (finished_) return;
      waiter = waiter_;  // 0: not known yet; Start() cancels it then
    }
    // Runs Answer (CANCELLED) now if the caller still waits; a no-op if the
    // cache answered meanwhile (that answer finishes the call).
    if (waiter != 0) cache_->CancelWaiter(key_, waiter);
  }

  void OnDone() override { delete this; }

 private:
  void Answer(absl::StatusOr<TokenCache::TokenPtr> token)
      ABSL_LOCKS_EXCLUDED(mu_) {
    grpc::Status answer;
    {
      MutexLock lock(&mu_);
      if (finished_) return;  // the cache answers once; defensive
      finished_ = true;
      if (cancelled_) {
        // The caller is gone: whatever the cache answered is not delivered.
        answer = audit_.Finish(CallerGone());
      } else {
        if (token.ok()) {
          audit_.SetToken(**token);
          SetResponseBytes(key_, **token, response_);
        }
        answer = audit_.Finish(token.status());
      }
    }
    Finish(answer);
  }

  // Why a cancelled call ended: its deadline passed (gRPC deadlines are
  // real time), or the caller cancelled it.
  absl::Status CallerGone() const {
    if (std::chrono::system_clock::now() >= context_->deadline()) {
      return absl::DeadlineExceededError(
          "the caller's deadline passed while waiting for the token");
    }
    return absl::CancelledError("the caller cancelled the call");
  }

  grpc::CallbackServerContext* const context_;
  TokenCache* const cache_;
  grpc::ByteBuffer* const response_;
  CacheKey key_;  // set by Start() before the reactor is shared
  Mutex mu_;
  RpcAudit audit_ ABSL_GUARDED_BY(mu_);
  uint64_t waiter_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

TokenService::TokenService(TokenCache* cache,
                           std::shared_ptr<const Policy> policy, Clock* clock,
                           BrokerMetrics* metrics,
                           int max_watch_streams_per_caller)
    : cache_(cache),
      clock_(clock),
      metrics_(metrics),
      max_watch_streams_per_caller_(max_watch_streams_per_caller),
      id_(next_service_id.fetch_add(1)),
      current_policy_(policy.get()),
      policy_(std::move(policy)) {}

TokenService::~TokenService() { EndWatches(); }

void TokenService::SetPolicy(std::shared_ptr<const Policy> policy) {
  MutexLock lock(&mu_);
  policy_ = std::move(policy);
  current_policy_.store(policy_.get(), std::memory_order_release);
  for (WatchTokenReactor* w : watches_) {
    if (!w->grant().authorized) continue;
    if (absl::Status s = Reauthorize(*policy_, *w); !s.ok()) {
      // End() returns once the stream can send nothing more.
      w->End(absl::PermissionDeniedError(absl::StrCat(
          "access revoked by a configuration change: ", s.message())));
    }
  }
}

std::shared_ptr<const CallerDecision> TokenService::DecideCaller(
    grpc::CallbackServerContext* context) {
  AuthContextRef connection(grpc_call_auth_context(context->c_call()));
  const Policy* current = current_policy_.load(std::memory_order_acquire);
  if (connection != nullptr) {
    const ThreadDecision* kept =
        thread_decisions.Find([&](const ThreadDecision& slot) {
          return slot.service == id_ && slot.connection == connection &&
                 slot.decision->policy.get() == current;
        });
    if (kept != nullptr) return kept->decision;
  }
  slow_decisions_.fetch_add(1, std::memory_order_relaxed);
  const std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  const absl::string_view pem = PeerPem(auth.get());
  std::shared_ptr<const CallerDecision> decision =
      Decide(pem, &identities_, policy());
  if (connection != nullptr && auth != nullptr &&
      AuthContextBytes(*auth) <= kMaxThreadAuthContextBytes) {
    ThreadDecision& slot = thread_decisions.Replace();
    slot.service = id_;
    slot.connection = std::move(connection);
    slot.decision = decision;
  }
  return decision;
}

std::shared_ptr<const Policy> TokenService::policy() const {
  MutexLock lock(&mu_);
  return policy_;
}

void TokenService::EndWatches() {
  MutexLock lock(&mu_);
  watches_ended_ = true;
  for (WatchTokenReactor* w : watches_) {
    w->End(absl::UnavailableError("the broker is shutting down; reconnect"));
  }
}

int TokenService::open_watches() const {
  MutexLock lock(&mu_);
  return static_cast<int>(watches_.size());
}

bool TokenService::WaitForOpenWatchesOf(const std::string& identity, int n,
                                        absl::Duration timeout) const {
  MutexLock lock(&mu_);
  return watches_changed_.WaitUntil(
      &mu_, absl::Now() + timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto it = watches_per_caller_.find(identity);
        return (it == watches_per_caller_.end() ? 0 : it->second) == n;
      });
}

void TokenService::Unregister(WatchTokenReactor* reactor) {
  MutexLock lock(&mu_);
  if (watches_.erase(reactor) == 0) return;
  const std::string& owner = reactor->grant().slot_owner;
  if (owner.empty()) return;
  auto it = watches_per_caller_.find(owner);
  if (it != watches_per_caller_.end() && --it->second <= 0) {
    watches_per_caller_.erase(it);
  }
  watches_changed_.SignalAll();
}

grpc::ServerUnaryReactor* TokenService::GetToken(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response) {
  RpcAudit audit(BrokerMetrics::Rpc::kGetToken, clock_, metrics_);
  // A call answered at once (refused, or a cache hit) finishes with gRPC's
  // default reactor, inline: a reactor of our own would have gRPC run its
  // OnDone on an executor thread, a thread hop per call.
  auto answer_now = [&](const absl::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(audit.Finish(status));
    return reactor;
  };
  const std::shared_ptr<const CallerDecision> caller =
      DecideCaller(context);
  audit.SetCallerJson(caller, caller->audit_json);
  grpc::Slice slice;
  if (!RequestWire(*request_bytes, &slice)) {
    return answer_now(absl::InvalidArgumentError(
        "the request is not a treezor.broker.v1.GetTokenRequest"));
  }
  const absl::string_view wire(reinterpret_cast<const char*>(slice.begin()),
                               slice.size());
  TokenCache::GetOptions options;
  // A recent grant of the same bytes to the same decision is this request,
  // already parsed, validated and authorized.
  std::shared_ptr<const GrantedRequest> granted =
      RecentGrant(id_, caller.get(), wire);
  if (granted != nullptr) {
    audit.SetTenantScopesJson(granted, granted->audit_json);
    options.min_ttl = granted->min_ttl;
  } else {
    // The request lives in an arena on this stack frame: a typical request
    // fits its first block, so parsing it allocates nothing. Nothing keeps
    // a reference to it past this block (the grant and options are copies).
    alignas(16) char arena_block[1024];
    google::protobuf::ArenaOptions arena_options;
    arena_options.initial_block = arena_block;
    arena_options.initial_block_size = sizeof(arena_block);
    google::protobuf::Arena arena(arena_options);
    const v1::GetTokenRequest* request = ParseGetTokenRequest(wire, &arena);
    if (request == nullptr) {
      return answer_now(absl::InvalidArgumentError(
          "the request is not a treezor.broker.v1.GetTokenRequest"));
    }
    audit.SetTenant(request->tenant());
    audit.SetScopes(request->scopes());
    if (absl::Status s = ValidateGetTokenRequest(*request); !s.ok()) {
      return answer_now(s);
    }
    absl::StatusOr<ScopeSet> scopes =
        Authorize(*caller, request->tenant(), request->scopes());
    if (!scopes.ok()) return answer_now(scopes.status());
    audit.SetScopes(*scopes);
    auto made = std::make_shared<GrantedRequest>();
    made->key = CacheKey{request->tenant(), *std::move(scopes)};
    if (request->has_min_ttl()) {
      options.min_ttl = FromProtoDuration(request->min_ttl());
    }
    made->min_ttl = options.min_ttl;
    made->audit_json = audit.TenantScopesJson();
    options.rejected_token_sha256 = request->rejected_token_sha256();
    if (options.rejected_token_sha256.empty()) {
      RememberGrant(id_, caller, wire, made);
    }
    granted = std::move(made);
  }
  const CacheKey& key = granted->key;
  options.caller = caller->matched->front().name;
  if (std::optional<absl::StatusOr<TokenCache::TokenPtr>> now =
          cache_->TryGet(key, options);
      now.has_value()) {
    if (now->ok()) {
      audit.SetToken(***now);
      SetResponseBytes(key, ***now, response);
    }
    return answer_now(now->status());
  }
  // The token must be waited for: a reactor that can be cancelled.
  auto* reactor = new GetTokenReactor(context, cache_, response, std::move(audit));
  reactor->Start(key, options);
  return reactor;
}

grpc::ServerWriteReactor<v1::GetTokenResponse>* TokenService::WatchToken(
    grpc::CallbackServerContext* context,
    const v1::WatchTokenRequest* request) {
  RpcAudit audit(BrokerMetrics::Rpc::kWatchToken, clock_, metrics_);
  // Decided under the policy of the moment; re-decided below, under the
  // lock, if the policy changes in between.
  std::shared_ptr<const CallerDecision> caller = DecideCaller(context);
  audit.SetTenant(request->tenant());
  WatchTokenReactor::Grant grant;
  if (caller->peer.ok()) grant.peer = *caller->peer;
  grant.tenant = request->tenant();
  absl::Status status = ValidateWatchTokenRequest(*request);
  if (status.ok()) {
    grant.requested_scopes.assign(request->scopes().begin(),
                                  request->scopes().end());
  }
  WatchTokenReactor* reactor = nullptr;
  {
    // Authorized and registered under one lock: a policy change either
    // happens before (and this stream is authorized against it) or after
    // (and re-authorizes this stream).
    MutexLock lock(&mu_);
    ScopeSet scopes;
    if (caller->policy != policy_) {
      caller = Decide(PeerPem(context->auth_context().get()), &identities_,
                      policy_);
    }
    audit.SetCallerJson(caller, caller->audit_json);
    if (status.ok()) {
      absl::StatusOr<ScopeSet> authorized =
          Authorize(*caller, request->tenant(), request->scopes());
      if (authorized.ok()) {
        scopes = *std::move(authorized);
      } else {
        status = authorized.status();
      }
    }
    if (status.ok() && watches_ended_) {
      status = absl::UnavailableError("the broker is shutting down; reconnect");
    }
    if (status.ok()) {
      // The slot is taken here, under the lock, so concurrent starts of one
      // caller cannot overshoot the cap; Unregister gives it back.
      const std::string& owner = caller->matched->front().name;
      int& open = watches_per_caller_[owner];
      if (open >= max_watch_streams_per_caller_) {
        if (open == 0) watches_per_caller_.erase(owner);
        status = absl::ResourceExhaustedError(absl::StrCat(
            "limits.maxWatchStreamsPerCaller (", max_watch_streams_per_caller_,
            ") reached for caller \"", BoundedIdentity(owner),
            "\": close a WatchToken stream first"));
      } else {
        ++open;
        grant.slot_owner = owner;
        watches_changed_.SignalAll();
      }
    }
    grant.authorized = status.ok();
    audit.SetScopes(scopes);
    reactor = new WatchTokenReactor(
        cache_, CacheKey{request->tenant(), std::move(scopes)},
        std::move(grant), std::move(audit),
        [this](WatchTokenReactor* r) { Unregister(r); });
    watches_.insert(reactor);
  }
  if (!status.ok()) {
    reactor->End(status);
  } else {
    reactor->Begin();
  }
  return reactor;
}

absl::Status TokenService::Reauthorize(const Policy& policy,
                                       const WatchTokenReactor& watch) {
  const WatchTokenReactor::Grant& grant = watch.grant();
  absl::StatusOr<std::vector<MatchedIdentity>> matched =
      policy.MatchCaller(grant.peer);
  if (!matched.ok()) return matched.status();
  absl::StatusOr<ScopeSet> scopes =
      policy.Authorize(*matched, grant.tenant, grant.requested_scopes);
  if (!scopes.ok()) return scopes.status();
  if (*scopes != watch.key().scopes) {
    return absl::PermissionDeniedError(
        "the request no longer resolves to this stream's scope set");
  }
  return absl::OkStatus();
}

}  // namespace treezor::broker
