// Strict UTF-8 validation for the fuzz targets' invariants (Abseil 20220623
// has none public): no overlong forms, no surrogates, nothing above U+10FFFF.
//
// Thread-safety: pure function.
#ifndef TREEZOR_BROKER_TESTS_FUZZ_UTF8_H_
#define TREEZOR_BROKER_TESTS_FUZZ_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace treezor::broker::fuzz {

inline bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char min_second = 0x80, max_second = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) min_second = 0xa0;  // overlong
      if (c == 0xed) max_second = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) min_second = 0x90;  // overlong
      if (c == 0xf4) max_second = 0x8f;  // above U+10FFFF
    } else {
      return false;
    }
    if (s.size() - i < length) return false;
    const auto second = static_cast<unsigned char>(s[i + 1]);
    if (second < min_second || second > max_second) return false;
    for (size_t k = 2; k < length; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

}  // namespace treezor::broker::fuzz

#endif  // TREEZOR_BROKER_TESTS_FUZZ_UTF8_H_
