#include "client/token_client.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "client/cache_key.h"
#include "client/hit_snapshot.h"
#include "common/backoff.h"
#include "common/grpc_callback_pin.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "common/sync.h"
#include "common/token_digest.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "treezor/broker/v1/token_service.grpc.pb.h"

#ifndef TZB_VERSION
#error "TZB_VERSION must be defined by the build"
#endif

namespace treezor::client {
namespace {

namespace v1 = ::treezor::broker::v1;
using internal::CacheKey;
using internal::CacheKeyEq;
using internal::CacheKeyHash;
using internal::CacheKeyView;
using internal::CanonicalScopes;

// A worker pass at least this often, to drop idle entries.
constexpr absl::Duration kSweepInterval = absl::Seconds(1);

// A thread answering an entry's hits from its snapshot still takes the
// locked path this often (or at a quarter of idle_timeout, if shorter), so
// the entry's last_used lags its real use by no more than that and idle
// eviction never drops an entry a thread keeps hitting.
constexpr absl::Duration kSnapshotMaxAge = absl::Seconds(1);

// A token as the cache holds it. Immutable once made, shared by snapshot.
struct CachedToken {
  Token token;
  std::string authorization_header;  // "Bearer <token>", made once
  std::string sha256;
  // Last instant a cache hit may return it: its expiry minus the margin.
  absl::Time fresh_until;
  // From here on, an entry without a stream renews it in the background.
  absl::Time refresh_at;
};

std::shared_ptr<const CachedToken> MakeCachedToken(
    v1::GetTokenResponse response, absl::Time now,
    absl::Duration refresh_margin) {
  auto cached = std::make_shared<CachedToken>();
  Token& t = cached->token;
  t.access_token = std::move(*response.mutable_access_token());
  t.token_type = std::move(*response.mutable_token_type());
  t.expires_at = FromProtoTimestamp(response.expires_at());
  t.scopes.assign(std::make_move_iterator(response.mutable_scopes()->begin()),
                  std::make_move_iterator(response.mutable_scopes()->end()));
  t.tenant = std::move(*response.mutable_tenant());
  cached->authorization_header = absl::StrCat(t.token_type, " ", t.access_token);
  cached->sha256 = TokenSha256Hex(t.access_token);
  const absl::Duration lifetime =
      std::max(absl::ZeroDuration(), t.expires_at - now);
  const absl::Duration margin = std::min(refresh_margin, lifetime / 10);
  cached->fresh_until = t.expires_at - margin;
  cached->refresh_at = t.expires_at - 2 * margin;
  return cached;
}

// Whether a call with these parameters may be answered with `c` at `now`:
// the one rule of a hit, with or without the lock.
bool Serves(const CachedToken& c, absl::Time now, absl::Duration min_ttl,
            const std::string* rejected_sha) {
  return now < c.fresh_until && now + min_ttl < c.token.expires_at &&
         (rejected_sha == nullptr || c.sha256 != *rejected_sha);
}

using Snapshots = internal::ThreadSnapshots<CachedToken>;
using SnapshotSlot = Snapshots::Slot;

}  // namespace

const char* Version() { return TZB_VERSION; }

class TokenClient::Impl {
 public:
  Impl(TokenClientOptions options, std::shared_ptr<grpc::Channel> channel);
  ~Impl();

  // A token for `key`, from the cache or the broker. With `rejected_sha`,
  // never the token of that digest, and a miss reports it to the broker.
  absl::StatusOr<Token> Get(const CacheKeyView& key, const CallOptions& call,
                            const std::string* rejected_sha)
      ABSL_LOCKS_EXCLUDED(mu_) {
    return Get<Token>(key, call, rejected_sha,
                      [](const std::shared_ptr<const CachedToken>& c,
                         SnapshotSlot*) {
                        return absl::StatusOr<Token>(absl::in_place, c->token);
                      });
  }
  // The same without a copy: the cached Token itself. A hit shares it
  // through this thread's snapshot (SnapshotSlot::Shared: the reference
  // count it increments is this thread's holder's, not the one every thread
  // shares); a miss, through the CachedToken's own count. No allocation
  // either way, but for the holder, once per thread and token.
  absl::StatusOr<std::shared_ptr<const Token>> GetShared(
      const CacheKeyView& key, const CallOptions& call)
      ABSL_LOCKS_EXCLUDED(mu_) {
    return Get<std::shared_ptr<const Token>>(
        key, call, nullptr,
        [](const std::shared_ptr<const CachedToken>& c, SnapshotSlot* slot) {
          const std::shared_ptr<const CachedToken>& owner =
              slot != nullptr ? slot->Shared() : c;
          return absl::StatusOr<std::shared_ptr<const Token>>(
              absl::in_place, owner, &owner->token);
        });
  }
  absl::StatusOr<std::string> GetHeader(const CacheKeyView& key,
                                        const CallOptions& call)
      ABSL_LOCKS_EXCLUDED(mu_) {
    return Get<std::string>(
        key, call, nullptr,
        [](const std::shared_ptr<const CachedToken>& c, SnapshotSlot*) {
          return absl::StatusOr<std::string>(absl::in_place,
                                             c->authorization_header);
        });
  }
  absl::StatusOr<Token> ReportRejected(absl::string_view token,
                                       const CallOptions& call)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class WatchCall;
  struct Flight;
  struct Entry;
  using Events = std::vector<TokenClientEvent>;

  // Get's body; `out(cached, slot)` makes what the caller wants from the
  // cached token it is given, with this thread's snapshot of it on a hit
  // (null otherwise), as the absl::StatusOr<T> Get returns: built in place,
  // so a hit copies the token once, into the caller's result, and does not
  // move it again. A hit calls it without the lock; a hit from this
  // thread's snapshot takes no lock at all (see hit_snapshot.h).
  template <typename T, typename Out>
  absl::StatusOr<T> Get(const CacheKeyView& key, const CallOptions& call,
                        const std::string* rejected_sha, Out out)
      ABSL_LOCKS_EXCLUDED(mu_);

  Entry* FindLocked(const CacheKeyView& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry's token if a call with these parameters may have it (and the
  // entry then counts as used); null otherwise, or without an entry.
  std::shared_ptr<const CachedToken> HitLocked(Entry* entry, absl::Time now,
                                               absl::Duration min_ttl,
                                               const std::string* rejected_sha)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry* FindLocked(const CacheKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After every change of what a hit may answer (an entry's `current` set,
  // cleared or erased): every thread's snapshot stops answering, so the
  // next hit of each takes the locked path. Changes are rare (a renewal per
  // entry and token lifetime, a rejection, an eviction) and hits frequent,
  // hence one generation for the whole cache rather than one per entry.
  void InvalidateSnapshotsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    snapshots_.Invalidate();
  }
  // The generation a snapshot of what the lock guards now is valid for.
  uint64_t SnapshotGenerationLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return snapshots_.generation();
  }
  // Registers a GetToken RPC for `entry`; the caller starts it with
  // LaunchFlight once it has released the lock (gRPC may run the completion
  // inline).
  std::shared_ptr<Flight> NewFlightLocked(Entry& entry, absl::Time deadline,
                                          absl::Duration min_ttl,
                                          std::string rejected_sha,
                                          bool background)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LaunchFlight(const std::shared_ptr<Flight>& flight)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnFlightDone(const std::shared_ptr<Flight>& flight,
                    const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns false when `call` no longer feeds an entry.
  bool OnPushed(WatchCall& call, v1::GetTokenResponse response)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnWatchDone(WatchCall& call, const grpc::Status& status)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Makes `token` the entry's current one unless it is older or rejected;
  // `force` for the answer to a rejection report. True if it replaced it.
  bool AcceptLocked(Entry& entry, std::shared_ptr<const CachedToken> token,
                    bool force, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration BackoffLocked(int failures) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TokenClientEvent EventLocked(TokenClientEvent::Kind kind, const Entry& entry,
                               absl::Status status = absl::OkStatus(),
                               const CachedToken* token = nullptr) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fire(const Events& events) const;
  void CallFinished() ABSL_LOCKS_EXCLUDED(mu_);
  void WorkerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const TokenClientOptions options_;
  const Clock* const clock_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::TokenService::Stub> stub_;
  // How long a thread's snapshot answers without the locked path.
  const absl::Duration snapshot_max_age_;
  // This client's id and generation for the threads' snapshots of its
  // entries. Atomic; Invalidate only under mu_ (InvalidateSnapshotsLocked).
  internal::SnapshotSource snapshots_;

  Mutex mu_;
  CondVar done_cv_;    // a flight or a call finished
  CondVar worker_cv_;  // work may be due, or shutting down
  absl::flat_hash_map<CacheKey, std::unique_ptr<Entry>, CacheKeyHash,
                      CacheKeyEq>
      entries_ ABSL_GUARDED_BY(mu_);
  // RPCs started and not yet finished (their last callback returned).
  int outstanding_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;
};

// One GetToken RPC, shared by every caller that waits for it.
struct TokenClient::Impl::Flight {
  // Set before the RPC starts, then read-only.
  Entry* entry;  // valid while entry->flight is this flight
  absl::Duration min_ttl;
  std::string rejected_sha;
  bool background;
  v1::GetTokenRequest request;
  grpc::ClientContext context;
  v1::GetTokenResponse response;
  // Guarded by Impl::mu_ (clang cannot name another object's lock here).
  bool done = false;
  absl::Status status;
  std::shared_ptr<const CachedToken> result;

  // Whether a call with these parameters may take this flight's answer.
  bool Serves(absl::Duration call_min_ttl,
              const std::string* call_rejected_sha) const {
    return min_ttl == call_min_ttl &&
           (call_rejected_sha == nullptr || *call_rejected_sha == rejected_sha);
  }
};

// One (tenant, scope set) in use. Guarded by Impl::mu_.
struct TokenClient::Impl::Entry {
  explicit Entry(CacheKey k) : key(std::move(k)) {}
  const CacheKey key;
  std::shared_ptr<const CachedToken> current;  // null while none is usable
  absl::Time last_used;                        // clock_ time
  std::shared_ptr<Flight> flight;              // the GetToken in progress
  std::string previous_sha;  // of the token `current` replaced
  std::string rejected_sha;  // last reported as rejected: never served again
  std::shared_ptr<WatchCall> watch;  // the open stream, if any
  bool watch_connected = false;      // it delivered a token
  int failures = 0;                  // consecutive failed stream attempts
  // Real time at which to (re)open the stream; InfiniteFuture: not planned.
  absl::Time retry_at = absl::InfiniteFuture();
};

// One WatchToken stream, feeding one entry. Kept alive by itself (self_)
// from Start until OnDone, whatever happens to the entry.
class TokenClient::Impl::WatchCall final
    : public grpc::ClientReadReactor<v1::GetTokenResponse> {
 public:
  WatchCall(Impl* impl, const CacheKey& key) : impl_(impl), key_(key) {
    request_.set_tenant(key.tenant);
    for (const std::string& s : key.scopes) request_.add_scopes(s);
  }

  void Start(std::shared_ptr<WatchCall> self) {
    self_ = std::move(self);
    impl_->stub_->async()->WatchToken(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void Cancel() { context_.TryCancel(); }
  const CacheKey& key() const { return key_; }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone follows
    if (impl_->OnPushed(*this, std::move(response_))) {
      response_.Clear();
      StartRead(&response_);
    } else {
      Cancel();
    }
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<WatchCall> keep = std::move(self_);
    impl_->OnWatchDone(*this, status);
  }

 private:
  Impl* const impl_;
  const CacheKey key_;
  grpc::ClientContext context_;
  v1::WatchTokenRequest request_;
  v1::GetTokenResponse response_;
  std::shared_ptr<WatchCall> self_;
};

TokenClient::Impl::Impl(TokenClientOptions options,
                        std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : SystemClock::Get()),
      channel_(std::move(channel)),
      stub_(v1::TokenService::NewStub(channel_)),
      snapshot_max_age_(
          std::min(kSnapshotMaxAge, options_.idle_timeout / 4)) {
  if (options_.watch) worker_ = std::thread([this] { WorkerLoop(); });
}

TokenClient::Impl::~Impl() {
  {
    MutexLock lock(&mu_);
    shutting_down_ = true;
    InvalidateSnapshotsLocked();
    worker_cv_.SignalAll();
  }
  if (worker_.joinable()) worker_.join();
  std::vector<std::shared_ptr<WatchCall>> watches;
  std::vector<std::shared_ptr<Flight>> flights;
  {
    MutexLock lock(&mu_);
    for (const auto& [key, entry] : entries_) {
      if (entry->watch != nullptr) watches.push_back(entry->watch);
      if (entry->flight != nullptr) flights.push_back(entry->flight);
    }
  }
  for (const auto& w : watches) w->Cancel();
  for (const auto& f : flights) f->context.TryCancel();
  MutexLock lock(&mu_);
  while (outstanding_calls_ > 0) done_cv_.Wait(&mu_);
  entries_.clear();
  InvalidateSnapshotsLocked();
  // (Threads' snapshots of this client may outlive it, holding their
  // tokens until each thread's next Put or its exit; none can answer: they
  // are keyed by snapshots_.id(), which no other client ever gets.)
}

TokenClient::Impl::Entry* TokenClient::Impl::FindLocked(
    const CacheKeyView& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second.get();
}

TokenClient::Impl::Entry* TokenClient::Impl::FindLocked(const CacheKey& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second.get();
}

template <typename T, typename Out>
absl::StatusOr<T> TokenClient::Impl::Get(const CacheKeyView& key,
                                         const CallOptions& call,
                                         const std::string* rejected_sha,
                                         Out out) {
  absl::Time now = clock_->Now();
  // The hot path: this thread's snapshot of the entry, valid while the
  // cache's generation has not moved since the thread took it. No lock, no
  // shared write: the generation is the one shared word it reads. (A
  // rejection report takes the locked path: it is rare, and must never be
  // answered with the token it reports.)
  if (rejected_sha == nullptr) {
    SnapshotSlot* slot =
        Snapshots::Find(snapshots_, key, now, snapshot_max_age_);
    if (slot != nullptr && Serves(*slot->value, now, call.min_ttl, nullptr)) {
      return out(slot->value, slot);
    }
  }
  absl::Time deadline = absl::InfinitePast();  // set at the first miss
  std::shared_ptr<const CachedToken> hit;
  uint64_t generation = 0;  // of `hit`
  for (bool first = true;; first = false) {
    std::shared_ptr<Flight> flight;
    bool launch = false;
    if (!first) now = clock_->Now();
    {
      MutexLock lock(&mu_);
      hit = HitLocked(FindLocked(key), now, call.min_ttl, rejected_sha);
      generation = SnapshotGenerationLocked();
    }
    // A hit by the locked path: one lookup and a reference count under the
    // lock (which also marks the entry used), then this thread's snapshot
    // of it, the copy outside the lock.
    if (hit != nullptr) break;
    {
      MutexLock lock(&mu_);
      Entry* entry = FindLocked(key);
      // Filled since we looked?
      hit = HitLocked(entry, now, call.min_ttl, rejected_sha);
      generation = SnapshotGenerationLocked();
      if (hit != nullptr) break;
      if (shutting_down_) {
        return absl::CancelledError("the TokenClient is being destroyed");
      }
      if (deadline == absl::InfinitePast()) {
        deadline = absl::Now() + (call.timeout > absl::ZeroDuration()
                                      ? call.timeout
                                      : options_.timeout);
      }
      if (entry == nullptr) {
        auto inserted = entries_.emplace(
            CacheKey::From(key), nullptr);
        inserted.first->second =
            std::make_unique<Entry>(inserted.first->first);
        entry = inserted.first->second.get();
      }
      entry->last_used = now;
      if (rejected_sha != nullptr) {
        if (entry->current != nullptr &&
            entry->current->sha256 == *rejected_sha) {
          entry->previous_sha = *rejected_sha;
          entry->current = nullptr;
          InvalidateSnapshotsLocked();
        }
        entry->rejected_sha = *rejected_sha;
      }
      flight = entry->flight;
      if (flight == nullptr) {
        flight = NewFlightLocked(
            *entry, deadline, call.min_ttl,
            rejected_sha != nullptr ? *rejected_sha : std::string(),
            /*background=*/false);
        launch = true;
      }
    }
    if (launch) LaunchFlight(flight);

    MutexLock lock(&mu_);
    if (!done_cv_.WaitUntil(&mu_, deadline,
                            [&flight] { return flight->done; })) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no token from the broker within the deadline for tenant \"",
          key.tenant, "\""));
    }
    if (!flight->Serves(call.min_ttl, rejected_sha)) continue;  // look again
    // (No snapshot of a flight's answer: the entry may hold another token.)
    if (flight->status.ok()) return out(flight->result, nullptr);
    if (flight->status.code() == absl::StatusCode::kDeadlineExceeded &&
        absl::Now() < deadline) {
      continue;  // the flight had a caller's shorter deadline; ours remains
    }
    return flight->status;
  }
  SnapshotSlot& slot =
      Snapshots::Put(snapshots_, key, std::move(hit), generation, now);
  return out(slot.value, &slot);
}

std::shared_ptr<const CachedToken> TokenClient::Impl::HitLocked(
    Entry* entry, absl::Time now, absl::Duration min_ttl,
    const std::string* rejected_sha) {
  if (entry == nullptr || entry->current == nullptr ||
      !Serves(*entry->current, now, min_ttl, rejected_sha)) {
    return nullptr;
  }
  entry->last_used = now;
  return entry->current;
}

absl::StatusOr<Token> TokenClient::Impl::ReportRejected(
    absl::string_view token, const CallOptions& call) {
  const std::string sha = TokenSha256Hex(token);
  CacheKey key;
  {
    MutexLock lock(&mu_);
    bool found = false;
    for (const auto& [k, entry] : entries_) {
      if ((entry->current != nullptr && entry->current->sha256 == sha) ||
          entry->previous_sha == sha || entry->rejected_sha == sha) {
        key = k;
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::NotFoundError(
          "the rejected token is not cached by this client (any more); "
          "report it with its tenant and scopes");
    }
  }
  CanonicalScopes scopes(key.scopes);
  return Get(CacheKeyView{key.tenant, scopes.view()}, call, &sha);
}

std::shared_ptr<TokenClient::Impl::Flight> TokenClient::Impl::NewFlightLocked(
    Entry& entry, absl::Time deadline, absl::Duration min_ttl,
    std::string rejected_sha, bool background) {
  auto flight = std::make_shared<Flight>();
  flight->entry = &entry;
  flight->min_ttl = min_ttl;
  flight->rejected_sha = std::move(rejected_sha);
  flight->background = background;
  flight->request.set_tenant(entry.key.tenant);
  for (const std::string& s : entry.key.scopes) flight->request.add_scopes(s);
  if (min_ttl > absl::ZeroDuration()) {
    ToProtoDuration(min_ttl, flight->request.mutable_min_ttl());
  }
  flight->request.set_rejected_token_sha256(flight->rejected_sha);
  flight->context.set_deadline(absl::ToChronoTime(deadline));
  entry.flight = flight;
  ++outstanding_calls_;
  return flight;
}

void TokenClient::Impl::LaunchFlight(const std::shared_ptr<Flight>& flight) {
  stub_->async()->GetToken(
      &flight->context, &flight->request, &flight->response,
      [this, flight](grpc::Status status) { OnFlightDone(flight, status); });
}

void TokenClient::Impl::OnFlightDone(const std::shared_ptr<Flight>& flight,
                                     const grpc::Status& status) {
  Events events;
  {
    MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    flight->status = FromGrpcStatus(status);
    Entry& entry = *flight->entry;
    entry.flight = nullptr;
    if (flight->status.ok()) {
      flight->result = MakeCachedToken(std::move(flight->response), now,
                                       options_.refresh_margin);
      const bool replaced = AcceptLocked(
          entry, flight->result, !flight->rejected_sha.empty(), now);
      if (flight->background && replaced) {
        events.push_back(EventLocked(TokenClientEvent::Kind::kFallbackRefreshed,
                                     entry, absl::OkStatus(),
                                     flight->result.get()));
      }
      if (options_.watch && entry.watch == nullptr &&
          entry.retry_at == absl::InfiniteFuture() && !shutting_down_) {
        entry.retry_at = absl::Now();  // first stream: open it now
        worker_cv_.Signal();
      }
    } else {
      if (flight->background && !shutting_down_) {
        events.push_back(EventLocked(TokenClientEvent::Kind::kFallbackFailed,
                                     entry, flight->status));
      }
      // A failed cold fetch leaves nothing worth keeping.
      if (entry.current == nullptr && entry.watch == nullptr) {
        EraseLocked(entry);
      }
    }
    flight->done = true;
    done_cv_.SignalAll();
  }
  Fire(events);
  CallFinished();
}

bool TokenClient::Impl::OnPushed(WatchCall& call,
                                 v1::GetTokenResponse response) {
  Events events;
  {
    MutexLock lock(&mu_);
    Entry* entry = FindLocked(call.key());
    if (entry == nullptr || entry->watch.get() != &call || shutting_down_) {
      return false;
    }
    const absl::Time now = clock_->Now();
    std::shared_ptr<const CachedToken> token =
        MakeCachedToken(std::move(response), now, options_.refresh_margin);
    if (!entry->watch_connected) {
      entry->watch_connected = true;
      entry->failures = 0;
      events.push_back(EventLocked(TokenClientEvent::Kind::kWatchConnected,
                                   *entry, absl::OkStatus(), token.get()));
    }
    if (AcceptLocked(*entry, token, /*force=*/false, now)) {
      events.push_back(EventLocked(TokenClientEvent::Kind::kTokenPushed,
                                   *entry, absl::OkStatus(), token.get()));
    }
  }
  Fire(events);
  return true;
}

void TokenClient::Impl::OnWatchDone(WatchCall& call,
                                    const grpc::Status& status) {
  Events events;
  {
    MutexLock lock(&mu_);
    Entry* entry = FindLocked(call.key());
    if (entry != nullptr && entry->watch.get() == &call) {
      entry->watch = nullptr;
      entry->failures = entry->watch_connected ? 1 : entry->failures + 1;
      entry->watch_connected = false;
      if (!shutting_down_) {
        entry->retry_at = absl::Now() + BackoffLocked(entry->failures);
        worker_cv_.Signal();
        events.push_back(EventLocked(TokenClientEvent::Kind::kWatchBroken,
                                     *entry, FromGrpcStatus(status)));
      }
    }
  }
  Fire(events);
  CallFinished();
}

bool TokenClient::Impl::AcceptLocked(Entry& entry,
                                     std::shared_ptr<const CachedToken> token,
                                     bool force, absl::Time now) {
  const CachedToken* current = entry.current.get();
  if (!force && token->sha256 == entry.rejected_sha) return false;
  if (current != nullptr) {
    if (current->sha256 == token->sha256) return false;
    // An answer that left the broker before the token we hold (e.g. a
    // GetToken overtaken by a push) must not bring an older token back.
    if (!force && token->token.expires_at < current->token.expires_at &&
        now < current->fresh_until) {
      return false;
    }
    entry.previous_sha = current->sha256;
  }
  entry.current = std::move(token);
  InvalidateSnapshotsLocked();
  return true;
}

void TokenClient::Impl::EraseLocked(const Entry& entry) {
  entries_.erase(entry.key);
  InvalidateSnapshotsLocked();
}

absl::Duration TokenClient::Impl::BackoffLocked(int failures) {
  return BackoffCeiling({options_.initial_backoff, options_.max_backoff},
                        failures) *
         absl::Uniform(bitgen_, 0.5, 1.0);
}

TokenClientEvent TokenClient::Impl::EventLocked(TokenClientEvent::Kind kind,
                                                const Entry& entry,
                                                absl::Status status,
                                                const CachedToken* token) const {
  TokenClientEvent e;
  e.kind = kind;
  e.tenant = entry.key.tenant;
  e.scopes = entry.key.scopes;
  e.status = std::move(status);
  if (token != nullptr) {
    e.token_fingerprint = token->sha256.substr(0, 12);
    e.expires_at = token->token.expires_at;
  }
  return e;
}

void TokenClient::Impl::Fire(const Events& events) const {
  if (!options_.on_event) return;
  for (const TokenClientEvent& e : events) options_.on_event(e);
}

void TokenClient::Impl::CallFinished() {
  MutexLock lock(&mu_);
  --outstanding_calls_;
  done_cv_.SignalAll();
}

// Opens streams that are due (first ones and reconnections, the latter
// preceded by a fallback GetToken when the token is getting old) and drops
// idle entries. gRPC is only called with the lock released.
void TokenClient::Impl::WorkerLoop() {
  while (true) {
    std::vector<std::shared_ptr<WatchCall>> to_start;
    std::vector<std::shared_ptr<WatchCall>> to_cancel;
    std::vector<std::shared_ptr<Flight>> to_launch;
    Events events;
    {
      MutexLock lock(&mu_);
      if (shutting_down_) return;
      const absl::Time real_now = absl::Now();
      const absl::Time now = clock_->Now();
      absl::Time next = real_now + kSweepInterval;
      for (auto it = entries_.begin(); it != entries_.end();) {
        Entry& entry = *it->second;
        if (entry.flight == nullptr &&
            now - entry.last_used > options_.idle_timeout) {
          if (entry.watch != nullptr) to_cancel.push_back(std::move(entry.watch));
          events.push_back(
              EventLocked(TokenClientEvent::Kind::kEvicted, entry));
          entries_.erase(it++);
          InvalidateSnapshotsLocked();
          continue;
        }
        if (entry.watch == nullptr && entry.retry_at != absl::InfiniteFuture()) {
          if (entry.retry_at <= real_now) {
            entry.retry_at = absl::InfiniteFuture();
            if (entry.flight == nullptr && entry.current != nullptr &&
                now >= entry.current->refresh_at && entry.failures > 0) {
              to_launch.push_back(NewFlightLocked(
                  entry, real_now + options_.timeout, absl::ZeroDuration(),
                  std::string(), /*background=*/true));
            }
            entry.watch = std::make_shared<WatchCall>(this, entry.key);
            entry.watch_connected = false;
            ++outstanding_calls_;
            to_start.push_back(entry.watch);
          } else {
            next = std::min(next, entry.retry_at);
          }
        }
        ++it;
      }
      if (to_start.empty() && to_cancel.empty() && to_launch.empty() &&
          events.empty()) {
        worker_cv_.WaitFor(&mu_, next - absl::Now());
        continue;
      }
    }
    for (const auto& w : to_cancel) w->Cancel();
    for (const auto& f : to_launch) LaunchFlight(f);
    for (auto& w : to_start) w->Start(w);
    Fire(events);
  }
}

TokenClient::TokenClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TokenClient::~TokenClient() = default;

absl::StatusOr<std::unique_ptr<TokenClient>> TokenClient::Create(
    TokenClientOptions options) {
  // Services may create and destroy clients: keep gRPC's callback queue
  // from being torn down (and raced) between them (common/grpc_callback_pin.h).
  PinGrpcCallbackQueue();
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be positive");
  }
  if (options.refresh_margin < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("refresh_margin: must not be negative");
  }
  if (options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        "initial_backoff, max_backoff: need 0 < initial_backoff <= "
        "max_backoff");
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      CreateBrokerChannel(options.connection);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<TokenClient>(new TokenClient(
      std::make_unique<Impl>(std::move(options), *std::move(channel))));
}

absl::StatusOr<Token> TokenClient::GetToken(
    absl::string_view tenant, const std::vector<std::string>& scopes,
    const CallOptions& call) {
  CanonicalScopes canonical(scopes);
  return impl_->Get(CacheKeyView{tenant, canonical.view()}, call, nullptr);
}

absl::StatusOr<std::shared_ptr<const Token>> TokenClient::GetSharedToken(
    absl::string_view tenant, const std::vector<std::string>& scopes,
    const CallOptions& call) {
  CanonicalScopes canonical(scopes);
  return impl_->GetShared(CacheKeyView{tenant, canonical.view()}, call);
}

absl::StatusOr<std::string> TokenClient::AuthorizationHeader(
    absl::string_view tenant, const std::vector<std::string>& scopes,
    const CallOptions& call) {
  CanonicalScopes canonical(scopes);
  return impl_->GetHeader(CacheKeyView{tenant, canonical.view()}, call);
}

absl::StatusOr<Token> TokenClient::ReportRejected(
    absl::string_view tenant, const std::vector<std::string>& scopes,
    absl::string_view rejected_access_token, const CallOptions& call) {
  const std::string sha = TokenSha256Hex(rejected_access_token);
  CanonicalScopes canonical(scopes);
  return impl_->Get(CacheKeyView{tenant, canonical.view()}, call, &sha);
}

absl::StatusOr<Token> TokenClient::ReportRejected(
    absl::string_view rejected_access_token, const CallOptions& call) {
  return impl_->ReportRejected(rejected_access_token, call);
}

}  // namespace treezor::client
