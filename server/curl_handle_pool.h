// Idle libcurl handles of all tenants, most recently used first, each tagged
// with the id of the tenant state it last served. A handle keeps its open
// connection to that tenant's Treezor host, so the tenant's next request
// skips the handshake.
//
//   CurlHandlePool pool(/*max_idle=*/16);
//   {
//     PooledHandle curl(&pool, tenant_id);  // an idle handle, or a new one
//     if (curl.get() != nullptr) curl_easy_perform(curl.get());
//   }                                       // back in the pool
//
// The pool is bounded in total, not per tenant: with thousands of tenants
// (each renewing once per token lifetime) per-tenant pools held two file
// descriptors and ~18 KB per tenant for connections that Treezor closes long
// before they are reused (measured in tests/bench/README.md). Handles are
// never moved between tenants: a connection opened with one tenant's client
// certificate stays with it.
//
// Thread-safety: CurlHandlePool is thread-safe; a PooledHandle belongs to the
// one request (thread) using it.
#ifndef TREEZOR_BROKER_SERVER_CURL_HANDLE_POOL_H_
#define TREEZOR_BROKER_SERVER_CURL_HANDLE_POOL_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "common/sync.h"
#include "server/curl_handle.h"

namespace treezor::broker::internal {

class CurlHandlePool {
 public:
  explicit CurlHandlePool(size_t max_idle) : max_idle_(max_idle) {}

  // The most recent idle handle of `tenant_id` if any, else a new one (null
  // if curl cannot make one).
  CurlHandle Take(uint64_t tenant_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps `handle` for `tenant_id`'s next request; the least recently used
  // idle handle is closed when more than `max_idle` are kept.
  void Return(uint64_t tenant_id, CurlHandle handle) ABSL_LOCKS_EXCLUDED(mu_);

  // Closes `tenant_id`'s idle handles (its settings or certificate changed).
  void Drop(uint64_t tenant_id) ABSL_LOCKS_EXCLUDED(mu_);

  size_t idle() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t max_idle_;
  mutable Mutex mu_;
  std::list<std::pair<uint64_t, CurlHandle>> idle_ ABSL_GUARDED_BY(mu_);
};

// A handle taken from the pool for one request, given back however the
// request ends.
class PooledHandle {
 public:
  PooledHandle(CurlHandlePool* pool, uint64_t tenant_id)
      : pool_(pool), tenant_id_(tenant_id), handle_(pool->Take(tenant_id)) {}
  ~PooledHandle() {
    if (handle_ != nullptr) pool_->Return(tenant_id_, std::move(handle_));
  }
  PooledHandle(const PooledHandle&) = delete;
  PooledHandle& operator=(const PooledHandle&) = delete;

  CURL* get() const { return handle_.get(); }

 private:
  CurlHandlePool* const pool_;
  const uint64_t tenant_id_;
  CurlHandle handle_;
};

}  // namespace treezor::broker::internal

#endif  // TREEZOR_BROKER_SERVER_CURL_HANDLE_POOL_H_
