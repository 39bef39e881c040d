#include "server/curl_handle_pool.h"

#include <vector>

namespace treezor::broker::internal {

CurlHandle CurlHandlePool::Take(uint64_t tenant_id) {
  {
    MutexLock lock(&mu_);
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->first == tenant_id) {
        CurlHandle handle = std::move(it->second);
        idle_.erase(it);
        return handle;
      }
    }
  }
  return CurlHandle(curl_easy_init());
}

void CurlHandlePool::Return(uint64_t tenant_id, CurlHandle handle) {
  CurlHandle evicted;  // closes after the lock is released
  MutexLock lock(&mu_);
  idle_.emplace_front(tenant_id, std::move(handle));
  if (idle_.size() > max_idle_) {
    evicted = std::move(idle_.back().second);
    idle_.pop_back();
  }
}

void CurlHandlePool::Drop(uint64_t tenant_id) {
  std::vector<CurlHandle> closed;  // close after the lock is released
  MutexLock lock(&mu_);
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (it->first == tenant_id) {
      closed.push_back(std::move(it->second));
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t CurlHandlePool::idle() const {
  MutexLock lock(&mu_);
  return idle_.size();
}

}  // namespace treezor::broker::internal
