#include "server/quote.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace treezor::broker {

std::string Quote(absl::string_view s, size_t max_length) {
  if (s.size() <= max_length) return absl::StrCat("\"", absl::CEscape(s), "\"");
  return absl::StrCat("\"", absl::CEscape(s.substr(0, max_length)), "\"...");
}

}  // namespace treezor::broker
