// Test-only: finds secret bytes left in freed heap memory, i.e. buffers that
// held a secret and were freed without being wiped.
//
//   InstallCurlAllocator();  // once, before libcurl is used, to see its frees
//   FreedMemoryScan scan({kSecret});
//   ... code under test ...
//   EXPECT_EQ(scan.unwiped_blocks(), 0);
//
// Compiling freed_memory_scan.cc into a test binary replaces that binary's
// global operator new/delete (and InstallCurlAllocator gives libcurl the
// same allocator): every block is zeroed when allocated, and, while a scan
// is active, searched when freed for any run of `run` consecutive bytes of a
// needle. Zeroing at allocation means whatever a block holds when it is
// freed was written during its life. Plain malloc/free callers other than
// libcurl (OpenSSL, protobuf's C parts) are not seen.
//
// Thread-safety: one scan at a time; frees from any thread are checked.
#ifndef TREEZOR_BROKER_TESTS_TESTING_FREED_MEMORY_SCAN_H_
#define TREEZOR_BROKER_TESTS_TESTING_FREED_MEMORY_SCAN_H_

#include <cstddef>
#include <initializer_list>

#include "absl/strings/string_view.h"

namespace treezor::broker::testing {

class FreedMemoryScan {
 public:
  // At most kMaxNeedles needles; they must outlive the scan (string
  // literals: storing them must not allocate).
  static constexpr size_t kMaxNeedles = 4;
  explicit FreedMemoryScan(std::initializer_list<absl::string_view> needles,
                           size_t run = 8);
  ~FreedMemoryScan();
  FreedMemoryScan(const FreedMemoryScan&) = delete;
  FreedMemoryScan& operator=(const FreedMemoryScan&) = delete;

  // Freed blocks, so far, that held a run of a needle.
  int unwiped_blocks() const;
};

// Gives libcurl the scanning allocator (curl_global_init_mem). Call before
// anything else initialises libcurl; idempotent.
void InstallCurlAllocator();

}  // namespace treezor::broker::testing

#endif  // TREEZOR_BROKER_TESTS_TESTING_FREED_MEMORY_SCAN_H_
