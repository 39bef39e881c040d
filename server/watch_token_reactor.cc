#include "server/watch_token_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sync.h"
#include "server/token_messages.h"

namespace treezor::broker {

// Everything the cache's callbacks touch: the reactor while it lives, the
// write in flight and the next token to send, and the audit that ends it.
class WatchTokenReactor::Stream {
 public:
  Stream(WatchTokenReactor* reactor, CacheKey key, RpcAudit audit)
      : key_(std::move(key)), reactor_(reactor), audit_(std::move(audit)) {}

  const CacheKey& key() const { return key_; }

  // Sends `token` unless the stream has ended; while a write is in flight it
  // replaces any token still waiting to be sent.
  void Send(const TokenCache::TokenPtr& token) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_) return;
    pending_ = token;
    MaybeWriteLocked();
  }

  void AuditStart() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    audit_.Event("stream_started");
  }

  void End(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void WriteDone(bool ok) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(absl::CancelledError("stream write failed"));
      return;
    }
    MaybeWriteLocked();
  }

  // Keeps the renewal subscription's handle; false if the RPC is already
  // done, in which case the caller unsubscribes.
  bool KeepSubscription(uint64_t handle) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (done_) return false;
    subscription_ = handle;
    return true;
  }

  // The RPC is done (OnDone): callbacks from now on find no reactor.
  // Returns the subscription to cancel (0 if none).
  uint64_t Detach() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    reactor_ = nullptr;
    done_ = true;
    // Normally finished already; a stream gRPC ended on its own still gets
    // its audit line.
    if (!audit_.finished()) {
      audit_.AddField({"tokens_sent", tokens_sent_});
      audit_.Finish(absl::CancelledError("the RPC ended"));
    }
    return subscription_;
  }

 private:
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reactor_ == nullptr || finished_ || writing_ || pending_ == nullptr) {
      return;
    }
    response_.Clear();
    FillResponse(key_, *pending_, &response_);
    // Audited when handed out, not only when the stream ends.
    audit_.Event("token_sent", pending_.get());
    pending_ = nullptr;
    writing_ = true;
    ++tokens_sent_;
    reactor_->StartWrite(&response_);
  }

  void FinishLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reactor_ == nullptr || finished_) return;
    finished_ = true;
    pending_ = nullptr;
    audit_.AddField({"tokens_sent", tokens_sent_});
    reactor_->Finish(audit_.Finish(status));
  }

  const CacheKey key_;
  Mutex mu_;
  WatchTokenReactor* reactor_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t subscription_ ABSL_GUARDED_BY(mu_) = 0;
  // The message of the write in flight (gRPC reads it until OnWriteDone).
  v1::GetTokenResponse response_ ABSL_GUARDED_BY(mu_);
  TokenCache::TokenPtr pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int tokens_sent_ ABSL_GUARDED_BY(mu_) = 0;
  RpcAudit audit_ ABSL_GUARDED_BY(mu_);
};

WatchTokenReactor::WatchTokenReactor(TokenCache* cache, CacheKey key,
                                     Grant grant, RpcAudit audit,
                                     DoneCallback on_done)
    : cache_(cache),
      grant_(std::move(grant)),
      on_done_(std::move(on_done)),
      stream_(std::make_shared<Stream>(this, std::move(key), std::move(audit))) {
}

const CacheKey& WatchTokenReactor::key() const { return stream_->key(); }

void WatchTokenReactor::Begin() {
  stream_->AuditStart();
  std::shared_ptr<Stream> stream = stream_;
  TokenCache* cache = cache_;
  cache->GetAsync(
      stream->key(), {},
      [stream, cache](absl::StatusOr<TokenCache::TokenPtr> token) {
        if (!token.ok()) {
          stream->End(token.status());
          return;
        }
        const uint64_t after_version = (*token)->version;
        stream->Send(*token);
        // Subscribe may call back at once: no lock is held here.
        const uint64_t handle = cache->Subscribe(
            stream->key(), after_version,
            [stream](absl::StatusOr<TokenCache::TokenPtr> next) {
              if (next.ok()) {
                stream->Send(*next);
              } else {
                // The tenant left the configuration.
                stream->End(absl::PermissionDeniedError(
                    absl::StrCat("tenant \"", stream->key().tenant,
                                 "\" is no longer available")));
              }
            });
        if (!stream->KeepSubscription(handle)) {
          cache->Unsubscribe(stream->key(), handle);
        }
      });
}

void WatchTokenReactor::End(const absl::Status& status) { stream_->End(status); }

void WatchTokenReactor::OnWriteDone(bool ok) { stream_->WriteDone(ok); }

void WatchTokenReactor::OnCancel() {
  stream_->End(absl::CancelledError("caller hung up"));
}

void WatchTokenReactor::OnDone() {
  const uint64_t subscription = stream_->Detach();
  if (subscription != 0) cache_->Unsubscribe(stream_->key(), subscription);
  if (on_done_) on_done_(this);
  delete this;
}

}  // namespace treezor::broker
