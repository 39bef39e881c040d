#include "tests/testing/freed_memory_scan.h"

#include <curl/curl.h>
#include <malloc.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

namespace treezor::broker::testing {
namespace {

// Plain globals: storing a string_view does not allocate.
std::atomic<bool> active{false};
std::atomic<int> unwiped{0};
absl::string_view needles[FreedMemoryScan::kMaxNeedles];
size_t needle_count = 0;
size_t run_length = 8;

bool HoldsRun(absl::string_view needle, const void* p, size_t n) {
  const size_t run = std::min(run_length, needle.size());
  for (size_t i = 0; i + run <= needle.size(); ++i) {
    if (memmem(p, n, needle.data() + i, run) != nullptr) return true;
  }
  return false;
}

void Scan(const void* p, size_t n) {
  if (!active.load()) return;
  for (size_t i = 0; i < needle_count; ++i) {
    if (HoldsRun(needles[i], p, n)) {
      unwiped.fetch_add(1);
      return;
    }
  }
}

void* ZeroedMalloc(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p != nullptr) memset(p, 0, malloc_usable_size(p));
  return p;
}

void ScannedFree(void* p) {
  if (p == nullptr) return;
  Scan(p, malloc_usable_size(p));
  std::free(p);
}

void* CurlRealloc(void* p, size_t n) {
  if (p == nullptr) return ZeroedMalloc(n);
  void* q = ZeroedMalloc(n);
  if (q == nullptr) return nullptr;
  memcpy(q, p, std::min(n, malloc_usable_size(p)));
  ScannedFree(p);
  return q;
}

char* CurlStrdup(const char* s) {
  const size_t n = strlen(s) + 1;
  auto* p = static_cast<char*>(ZeroedMalloc(n));
  if (p != nullptr) memcpy(p, s, n);
  return p;
}

void* CurlCalloc(size_t count, size_t size) {
  return ZeroedMalloc(count * size);
}

}  // namespace

FreedMemoryScan::FreedMemoryScan(
    std::initializer_list<absl::string_view> list, size_t run) {
  needle_count = 0;
  for (absl::string_view needle : list) {
    if (needle_count < kMaxNeedles) needles[needle_count++] = needle;
  }
  run_length = run;
  unwiped.store(0);
  active.store(true);
}

FreedMemoryScan::~FreedMemoryScan() { active.store(false); }

int FreedMemoryScan::unwiped_blocks() const { return unwiped.load(); }

void InstallCurlAllocator() {
  static const CURLcode installed = curl_global_init_mem(
      CURL_GLOBAL_DEFAULT, &ZeroedMalloc, &ScannedFree, &CurlRealloc,
      &CurlStrdup, &CurlCalloc);
  (void)installed;
}

}  // namespace treezor::broker::testing

void* operator new(size_t n) {
  void* p = treezor::broker::testing::ZeroedMalloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  treezor::broker::testing::ScannedFree(p);
}
void operator delete[](void* p) noexcept {
  treezor::broker::testing::ScannedFree(p);
}
void operator delete(void* p, size_t) noexcept {
  treezor::broker::testing::ScannedFree(p);
}
void operator delete[](void* p, size_t) noexcept {
  treezor::broker::testing::ScannedFree(p);
}
