// A user-supplied string inside an error message: double-quoted and
// C-escaped, so that control characters, quotes and invalid UTF-8 cannot
// forge or break a log line; optionally cut short, so that a huge request
// does not make a huge message.
//
//   Quote("a\"b")           // "\"a\\\"b\""
//   Quote(long_name, 80)    // "\"<first 80 bytes, escaped>\"..."
#ifndef TREEZOR_BROKER_SERVER_QUOTE_H_
#define TREEZOR_BROKER_SERVER_QUOTE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace treezor::broker {

// `max_length` bytes of `s` at most (the rest replaced by "..." after the
// closing quote).
std::string Quote(absl::string_view s,
                  size_t max_length = absl::string_view::npos);

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_QUOTE_H_
