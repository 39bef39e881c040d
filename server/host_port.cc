#include "server/host_port.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/quote.h"

namespace treezor::broker {

namespace {

bool IsWildcardHost(absl::string_view host) {
  return host == "0.0.0.0" || host == "::";
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(address), " is not host:port (", why,
                     "; e.g. \"0.0.0.0:8443\" or \"[::]:8443\")"));
  };
  HostPort result;
  absl::string_view port;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) return bad("no closing ']'");
    result.host = std::string(address.substr(1, close - 1));
    if (result.host.empty() ||
        result.host.find_first_not_of("0123456789abcdefABCDEF:.%") !=
            std::string::npos) {
      return bad("bad IPv6 address between brackets");
    }
    absl::string_view after = address.substr(close + 1);
    if (!absl::ConsumePrefix(&after, ":")) return bad("no port");
    port = after;
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return bad("no port");
    result.host = std::string(address.substr(0, colon));
    port = address.substr(colon + 1);
    if (result.host.find(':') != std::string::npos) {
      return bad("an IPv6 address needs brackets");
    }
    if (result.host.empty()) return bad("no host");
    for (char c : result.host) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
          c != '-' && c != '_') {
        return bad("bad character in host");
      }
    }
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(port, &result.port) || result.port > 65535) {
    return bad("the port must be a number in [0, 65535]");
  }
  return result;
}

bool SameBinding(const HostPort& a, const HostPort& b) {
  if (a.port == 0 || a.port != b.port) return false;
  return a.host == b.host || IsWildcardHost(a.host) || IsWildcardHost(b.host);
}

}  // namespace treezor::broker
