#include "server/base_url.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/quote.h"

namespace treezor::broker {

std::optional<std::string> BaseUrlProblem(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "https://")) {
    return absl::StrCat(Quote(url), " must start with \"https://\"");
  }
  if (rest.find_first_of("?#@ \t\r\n\\") != absl::string_view::npos) {
    return absl::StrCat(Quote(url),
                        " must not contain a query, a fragment, user "
                        "information or whitespace");
  }
  if (absl::EndsWith(url, "/")) {
    return absl::StrCat(Quote(url),
                        " must not end with \"/\" (the token URL is baseUrl + "
                        "\"/oauth/token\"): remove it");
  }
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos &&
      absl::StrContains(rest.substr(slash), "//")) {
    return absl::StrCat(Quote(url), " has an empty path segment (\"//\")");
  }
  // host, [v6] host, optional ":port".
  absl::string_view host = authority;
  std::optional<absl::string_view> port;
  const size_t close = absl::StartsWith(authority, "[")
                           ? authority.find(']')
                           : absl::string_view::npos;
  const size_t colon =
      authority.find(':', close == absl::string_view::npos ? 0 : close);
  if (colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  const char* host_chars =
      "abcdefghijklmnopqrstuvwxyz"
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
  if (close != absl::string_view::npos) {
    if (close + 1 != host.size()) {
      return absl::StrCat(Quote(url), " has a malformed host");
    }
    host = host.substr(1, host.size() - 2);
    host_chars = "0123456789abcdefABCDEF:.";
  }
  if (host.empty()) return absl::StrCat(Quote(url), " has no host");
  if (host.find_first_not_of(host_chars) != absl::string_view::npos) {
    return absl::StrCat(Quote(url), " has a malformed host");
  }
  int n = 0;
  if (port.has_value() &&
      (port->empty() ||
       port->find_first_not_of("0123456789") != absl::string_view::npos ||
       !absl::SimpleAtoi(*port, &n) || n < 1 || n > 65535)) {
    return absl::StrCat(Quote(url), " has a bad port");
  }
  return std::nullopt;
}

}  // namespace treezor::broker
