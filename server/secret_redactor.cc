#include "server/secret_redactor.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "server/logging.h"

namespace treezor::broker {
namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";
constexpr char kLowerHex[] = "0123456789abcdef";

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

Secret PercentEncoded(absl::string_view s, const char* hex,
                      bool plus_for_space) {
  Secret out;
  for (unsigned char c : s) {
    if (IsUnreserved(c)) {
      const char kept = static_cast<char>(c);
      out.Append(absl::string_view(&kept, 1));
    } else if (c == ' ' && plus_for_space) {
      out.Append("+");
    } else {
      const char escaped[3] = {'%', hex[c >> 4], hex[c & 0xf]};
      out.Append(absl::string_view(escaped, 3));
    }
  }
  return out;
}

// As the broker's JSON body carries it: the logger's escaping, the one JSON
// string writer of the project, into a buffer large enough never to
// reallocate (at most 6 bytes per byte, plus the quotes), then wiped.
Secret JsonEscaped(absl::string_view s) {
  std::string quoted;
  quoted.reserve(6 * s.size() + 2);
  internal::AppendJsonString(s, &quoted);
  Secret out(absl::string_view(quoted).substr(1, quoted.size() - 2));
  CleanseString(&quoted);
  return out;
}

// The code point of the UTF-8 sequence at s[*i] (advancing *i past it), or
// -1 for a byte that does not start a valid sequence.
int32_t DecodeUtf8(absl::string_view s, size_t* i) {
  const auto lead = static_cast<unsigned char>(s[*i]);
  const int length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 0;
  if (length == 0 || *i + length > s.size()) return -1;
  int32_t cp = lead & (0x3f >> (length - 1));
  for (int k = 1; k < length; ++k) {
    const auto c = static_cast<unsigned char>(s[*i + k]);
    if ((c & 0xc0) != 0x80) return -1;
    cp = (cp << 6) | (c & 0x3f);
  }
  *i += length - 1;
  return cp;
}

void AppendUnicodeEscape(uint32_t unit, Secret* out) {
  const char escaped[6] = {'\\', 'u', kLowerHex[(unit >> 12) & 0xf],
                           kLowerHex[(unit >> 8) & 0xf],
                           kLowerHex[(unit >> 4) & 0xf], kLowerHex[unit & 0xf]};
  out->Append(absl::string_view(escaped, 6));
}

// PHP's json_encode with default flags: "/" as "\/", every non-ASCII
// character as \uXXXX (UTF-16, surrogate pairs above U+FFFF).
Secret PhpJsonEscaped(absl::string_view s) {
  Secret out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out.Append("\\\""); continue;
      case '\\': out.Append("\\\\"); continue;
      case '/': out.Append("\\/"); continue;
      case '\b': out.Append("\\b"); continue;
      case '\f': out.Append("\\f"); continue;
      case '\n': out.Append("\\n"); continue;
      case '\r': out.Append("\\r"); continue;
      case '\t': out.Append("\\t"); continue;
      default: break;
    }
    if (c < 0x20) {
      AppendUnicodeEscape(c, &out);
    } else if (c < 0x80) {
      const char kept = static_cast<char>(c);
      out.Append(absl::string_view(&kept, 1));
    } else if (const int32_t cp = DecodeUtf8(s, &i); cp < 0) {
      const char kept = static_cast<char>(c);  // not UTF-8: as is
      out.Append(absl::string_view(&kept, 1));
    } else if (cp < 0x10000) {
      AppendUnicodeEscape(static_cast<uint32_t>(cp), &out);
    } else {
      const uint32_t v = static_cast<uint32_t>(cp) - 0x10000;
      AppendUnicodeEscape(0xd800 + (v >> 10), &out);
      AppendUnicodeEscape(0xdc00 + (v & 0x3ff), &out);
    }
  }
  return out;
}

bool IsUtf8Continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xc0) == 0x80;
}

}  // namespace

void SecretRedactor::Add(absl::string_view secret) {
  if (secret.empty()) return;
  AddForm(Secret(secret));
  AddForm(PercentEncoded(secret, kUpperHex, false));  // curl_easy_escape
  AddForm(PercentEncoded(secret, kLowerHex, false));
  AddForm(PercentEncoded(secret, kUpperHex, true));  // HTML form encoding
  AddForm(PercentEncoded(secret, kLowerHex, true));
  AddForm(JsonEscaped(secret));
  AddForm(PhpJsonEscaped(secret));
}

void SecretRedactor::AddForm(Secret form) {
  for (const Secret& known : forms_) {
    if (known.view() == form.view()) return;
  }
  forms_.push_back(std::move(form));
}

std::string SecretRedactor::Redact(absl::string_view text) const {
  if (forms_.empty() || text.empty()) return std::string(text);
  // Every window of each form, by window length (kMinRun, or the whole form
  // when shorter). The sets hold views into the forms, not copies.
  absl::flat_hash_map<size_t, absl::flat_hash_set<absl::string_view>> windows;
  for (const Secret& form : forms_) {
    const absl::string_view f = form.view();
    const size_t n = std::min(kMinRun, f.size());
    auto& set = windows[n];
    for (size_t i = 0; i + n <= f.size(); ++i) set.insert(f.substr(i, n));
  }
  std::vector<bool> covered(text.size(), false);
  for (const auto& [n, set] : windows) {
    for (size_t i = 0; i + n <= text.size(); ++i) {
      if (set.contains(text.substr(i, n))) {
        std::fill(covered.begin() + i, covered.begin() + i + n, true);
      }
    }
  }
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (!covered[i]) {
      out.push_back(text[i++]);
      continue;
    }
    // A marked range, widened to whole UTF-8 characters: back over the
    // continuation bytes already copied, on past those that follow.
    while (!out.empty() && IsUtf8Continuation(text[i]) &&
           IsUtf8Continuation(out.back())) {
      out.pop_back();
    }
    if (!out.empty() && IsUtf8Continuation(text[i]) &&
        static_cast<unsigned char>(out.back()) >= 0xc0) {
      out.pop_back();  // the lead byte
    }
    while (i < text.size() && (covered[i] || IsUtf8Continuation(text[i]))) {
      ++i;
    }
    out.append(kMarker.data(), kMarker.size());
  }
  return out;
}

}  // namespace treezor::broker
