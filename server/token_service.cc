#include "server/token_service.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "server/logging.h"
#include "server/peer_identity.h"

namespace treezor::broker {
namespace {

constexpr size_t kMaxTenantLength = 128;
constexpr int kMaxScopes = 32;

std::vector<std::string> CallerIdentities(grpc::CallbackServerContext* ctx) {
  auto auth = ctx->auth_context();
  if (auth == nullptr) return {};
  return PeerIdentities(*auth);
}

// Syntax checks that need no policy: a malformed request is
// INVALID_ARGUMENT naming the field, whoever the caller is.
absl::Status ValidateTenantAndScopes(
    const std::string& tenant,
    const google::protobuf::RepeatedPtrField<std::string>& scopes) {
  if (tenant.empty()) {
    return absl::InvalidArgumentError("tenant: required");
  }
  if (tenant.size() > kMaxTenantLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("tenant: longer than ", kMaxTenantLength, " characters"));
  }
  if (scopes.size() > kMaxScopes) {
    return absl::InvalidArgumentError(
        absl::StrCat("scopes: more than ", kMaxScopes, " scopes"));
  }
  for (int i = 0; i < scopes.size(); ++i) {
    if (absl::Status s = ValidateScope(scopes[i], absl::StrCat("scopes[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateGetToken(const v1::GetTokenRequest& request) {
  if (absl::Status s = ValidateTenantAndScopes(request.tenant(), request.scopes());
      !s.ok()) {
    return s;
  }
  if (request.has_min_ttl()) {
    const auto& d = request.min_ttl();
    if (d.seconds() < 0 || d.nanos() < 0) {
      return absl::InvalidArgumentError("min_ttl: must not be negative");
    }
    if (d.nanos() > 999'999'999 || d.seconds() > 315'576'000'000) {
      return absl::InvalidArgumentError("min_ttl: not a valid duration");
    }
  }
  const std::string& sha = request.rejected_token_sha256();
  if (!sha.empty()) {
    const bool hex = sha.size() == 64 &&
                     std::all_of(sha.begin(), sha.end(), [](char c) {
                       return absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
                              (c >= 'a' && c <= 'f');
                     });
    if (!hex) {
      return absl::InvalidArgumentError(
          "rejected_token_sha256: must be 64 lowercase hex digits (SHA-256)");
    }
  }
  return absl::OkStatus();
}

void Audit(absl::string_view rpc, const std::vector<std::string>& identities,
           const std::string& tenant, absl::string_view scopes,
           const absl::Status& outcome, const CachedToken* token,
           absl::Time started, std::initializer_list<LogField> extra = {}) {
  // Built in place (this runs on every RPC): no initializer-list copies.
  std::vector<LogField> fields;
  fields.reserve(8 + extra.size());
  fields.emplace_back("rpc", rpc);
  fields.emplace_back("caller", absl::StrJoin(identities, ","));
  fields.emplace_back("tenant",
                      absl::string_view(tenant).substr(0, kMaxTenantLength));
  fields.emplace_back("scopes", scopes);
  fields.emplace_back("outcome", absl::StatusCodeToString(outcome.code()));
  fields.emplace_back("latency_us",
                      absl::ToInt64Microseconds(absl::Now() - started));
  if (!outcome.ok()) fields.emplace_back("error", outcome.message());
  if (token != nullptr) fields.emplace_back("token_fp", token->fingerprint);
  for (const LogField& f : extra) fields.push_back(f);
  Log(LogLevel::kInfo, "audit", fields);
}

}  // namespace

void FillResponse(const CacheKey& key, const CachedToken& token,
                  v1::GetTokenResponse* response) {
  response->set_access_token(token.token.access_token);
  response->set_token_type("Bearer");
  ToProtoTimestamp(token.token.expires_at, response->mutable_expires_at());
  for (const std::string& s : key.scopes.scopes()) response->add_scopes(s);
  response->set_tenant(key.tenant);
}

// One WatchToken stream. Everything the cache's callbacks touch lives in a
// shared Link, so a callback that fires after the RPC is done finds the
// reactor gone instead of freed memory. Writes are serialised: one in
// flight, and only the newest token is kept while one is.
class TokenService::WatchReactor final
    : public grpc::ServerWriteReactor<v1::GetTokenResponse> {
 public:
  struct Link {
    Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    bool done ABSL_GUARDED_BY(mu) = false;
    uint64_t subscription ABSL_GUARDED_BY(mu) = 0;
  };

  WatchReactor(TokenService* service, CacheKey key,
               std::vector<std::string> identities)
      : service_(service),
        key_(std::move(key)),
        identities_(std::move(identities)),
        started_(absl::Now()),
        link_(std::make_shared<Link>()) {
    MutexLock lock(&link_->mu);
    link_->reactor = this;
  }

  // Fetches the current token, sends it, then subscribes to renewals.
  void Begin() {
    std::shared_ptr<Link> link = link_;
    TokenCache* cache = service_->cache_;
    const CacheKey key = key_;
    cache->GetAsync(key, {}, [link, cache, key](absl::StatusOr<TokenCache::TokenPtr> t) {
      uint64_t after_version = 0;
      {
        MutexLock lock(&link->mu);
        if (link->reactor == nullptr) return;
        if (!t.ok()) {
          link->reactor->FinishLocked(*link, t.status());
          return;
        }
        after_version = (*t)->version;
        link->reactor->SendLocked(*t);
      }
      // Outside the lock: Subscribe may call back at once.
      const uint64_t handle = cache->Subscribe(
          key, after_version, [link](absl::StatusOr<TokenCache::TokenPtr> next) {
            MutexLock lock(&link->mu);
            if (link->reactor == nullptr) return;
            if (next.ok()) {
              link->reactor->SendLocked(*next);
            } else {
              // The tenant left the configuration.
              link->reactor->FinishLocked(
                  *link, absl::PermissionDeniedError(absl::StrCat(
                             "tenant \"", link->reactor->key_.tenant,
                             "\" is no longer available")));
            }
          });
      bool unsubscribe = false;
      {
        MutexLock lock(&link->mu);
        if (link->done) {
          unsubscribe = true;
        } else {
          link->subscription = handle;
        }
      }
      if (unsubscribe) cache->Unsubscribe(key, handle);
    });
  }

  void End(const absl::Status& status) ABSL_LOCKS_EXCLUDED(link_->mu) {
    MutexLock lock(&link_->mu);
    FinishLocked(*link_, status);
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(link_->mu) {
    MutexLock lock(&link_->mu);
    writing_ = false;
    if (!ok) {
      FinishLocked(*link_, absl::CancelledError("stream write failed"));
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override ABSL_LOCKS_EXCLUDED(link_->mu) {
    MutexLock lock(&link_->mu);
    FinishLocked(*link_, absl::CancelledError("caller hung up"));
  }

  void OnDone() override {
    uint64_t subscription;
    {
      MutexLock lock(&link_->mu);
      link_->reactor = nullptr;
      link_->done = true;
      subscription = link_->subscription;
    }
    if (subscription != 0) service_->cache_->Unsubscribe(key_, subscription);
    Audit("WatchToken", identities_, key_.tenant, key_.scopes.ToOAuthString(),
          final_status_, nullptr, started_,
          {{"tokens_sent", tokens_sent_}});
    if (service_->metrics_ != nullptr) {
      service_->metrics_->RecordRpc(BrokerMetrics::Rpc::kWatchToken,
                                    final_status_.code(),
                                    absl::Now() - started_);
    }
    service_->Unregister(this);
    delete this;
  }

 private:
  void SendLocked(const TokenCache::TokenPtr& token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) {
    if (finished_) return;
    pending_ = token;
    MaybeWriteLocked();
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) {
    if (finished_ || writing_ || pending_ == nullptr) return;
    response_.Clear();
    FillResponse(key_, *pending_, &response_);
    pending_ = nullptr;
    writing_ = true;
    ++tokens_sent_;
    StartWrite(&response_);
  }

  void FinishLocked(Link& link, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(link.mu) {
    if (finished_) return;
    finished_ = true;
    final_status_ = status;
    Finish(ToGrpcStatus(status));
  }

  TokenService* const service_;
  const CacheKey key_;
  const std::vector<std::string> identities_;
  const absl::Time started_;
  const std::shared_ptr<Link> link_;
  // Guarded by link_->mu.
  v1::GetTokenResponse response_;
  TokenCache::TokenPtr pending_;
  bool writing_ = false;
  bool finished_ = false;
  int tokens_sent_ = 0;
  absl::Status final_status_;
};

TokenService::TokenService(TokenCache* cache,
                           std::shared_ptr<const Policy> policy,
                           BrokerMetrics* metrics)
    : cache_(cache), metrics_(metrics), policy_(std::move(policy)) {}

TokenService::~TokenService() { EndWatches(); }

void TokenService::SetPolicy(std::shared_ptr<const Policy> policy) {
  MutexLock lock(&mu_);
  policy_ = std::move(policy);
}

std::shared_ptr<const Policy> TokenService::policy() const {
  MutexLock lock(&mu_);
  return policy_;
}

void TokenService::EndWatches() {
  MutexLock lock(&mu_);
  watches_ended_ = true;
  for (WatchReactor* w : watches_) {
    w->End(absl::UnavailableError("the broker is shutting down; reconnect"));
  }
}

int TokenService::open_watches() const {
  MutexLock lock(&mu_);
  return static_cast<int>(watches_.size());
}

void TokenService::Unregister(WatchReactor* reactor) {
  MutexLock lock(&mu_);
  watches_.erase(reactor);
}

grpc::ServerUnaryReactor* TokenService::GetToken(
    grpc::CallbackServerContext* context, const v1::GetTokenRequest* request,
    v1::GetTokenResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time started = absl::Now();
  std::vector<std::string> identities = CallerIdentities(context);

  BrokerMetrics* const metrics = metrics_;
  auto fail = [&](const absl::Status& status) {
    Audit("GetToken", identities, request->tenant(),
          absl::StrJoin(request->scopes(), " "), status,
          nullptr, started);
    if (metrics != nullptr) {
      metrics->RecordRpc(BrokerMetrics::Rpc::kGetToken, status.code(),
                         absl::Now() - started);
    }
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  };
  if (absl::Status s = ValidateGetToken(*request); !s.ok()) return fail(s);
  const std::vector<std::string> requested(request->scopes().begin(),
                                           request->scopes().end());
  absl::StatusOr<ScopeSet> scopes =
      policy()->Authorize(identities, request->tenant(), requested);
  if (!scopes.ok()) return fail(scopes.status());

  CacheKey key{request->tenant(), *std::move(scopes)};
  TokenCache::GetOptions options;
  if (request->has_min_ttl()) {
    options.min_ttl = FromProtoDuration(request->min_ttl());
  }
  options.rejected_token_sha256 = request->rejected_token_sha256();
  cache_->GetAsync(
      key, options,
      [reactor, response, key, identities = std::move(identities), started,
       metrics](absl::StatusOr<TokenCache::TokenPtr> token) {
        const CachedToken* cached = token.ok() ? token->get() : nullptr;
        Audit("GetToken", identities, key.tenant, key.scopes.ToOAuthString(),
              token.status(), cached, started);
        if (metrics != nullptr) {
          metrics->RecordRpc(BrokerMetrics::Rpc::kGetToken,
                             token.status().code(), absl::Now() - started);
        }
        if (!token.ok()) {
          reactor->Finish(ToGrpcStatus(token.status()));
          return;
        }
        FillResponse(key, *cached, response);
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerWriteReactor<v1::GetTokenResponse>* TokenService::WatchToken(
    grpc::CallbackServerContext* context,
    const v1::WatchTokenRequest* request) {
  std::vector<std::string> identities = CallerIdentities(context);
  absl::Status status =
      ValidateTenantAndScopes(request->tenant(), request->scopes());
  ScopeSet scopes;
  if (status.ok()) {
    const std::vector<std::string> requested(request->scopes().begin(),
                                             request->scopes().end());
    absl::StatusOr<ScopeSet> authorized =
        policy()->Authorize(identities, request->tenant(), requested);
    if (authorized.ok()) {
      scopes = *std::move(authorized);
    } else {
      status = authorized.status();
    }
  }
  auto* reactor = new WatchReactor(
      this, CacheKey{request->tenant(), std::move(scopes)}, std::move(identities));
  {
    MutexLock lock(&mu_);
    watches_.insert(reactor);
    if (status.ok() && watches_ended_) {
      status = absl::UnavailableError("the broker is shutting down; reconnect");
    }
  }
  if (!status.ok()) {
    reactor->End(status);
  } else {
    reactor->Begin();
  }
  return reactor;
}

}  // namespace treezor::broker
