// The fuzz targets' invariant check. A broken invariant must be a crash in
// every build: libFuzzer then saves the input as a crash artifact, and the
// replay test (replay_main.cc) fails. assert() would vanish under NDEBUG.
//
//   TZB_FUZZ_CHECK(token->expires_at > now, "expires_at not after now");
//
// Thread-safety: stateless.
#ifndef TREEZOR_BROKER_TESTS_FUZZ_FUZZ_CHECK_H_
#define TREEZOR_BROKER_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

namespace treezor::broker::fuzz {

[[noreturn]] inline void CheckFailed(const char* file, int line,
                                     const char* condition,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n  %s\n", file, line,
               condition, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace treezor::broker::fuzz

// `detail` (anything convertible to std::string) is evaluated only on failure.
#define TZB_FUZZ_CHECK(condition, detail)                                   \
  do {                                                                      \
    if (!(condition)) {                                                     \
      ::treezor::broker::fuzz::CheckFailed(__FILE__, __LINE__, #condition, \
                                           (detail));                      \
    }                                                                       \
  } while (0)

#endif  // TREEZOR_BROKER_TESTS_FUZZ_FUZZ_CHECK_H_
