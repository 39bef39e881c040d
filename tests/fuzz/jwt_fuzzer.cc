// Fuzz target: the JWT expiry reader (server/jwt.h). Every input is tried
// twice: as a whole token, and as the JSON payload of an otherwise
// well-formed unsigned JWT — mutating base64 text rarely yields JSON, so the
// second form is what reaches the payload handling. Invariants, for any input:
//  - a returned time is in the documented range: not before the epoch (`exp`
//    must be positive; fractions are truncated, so 0 < exp < 1 gives the
//    epoch itself), not after 9999-12-31T23:59:59Z, and a whole second;
//  - a token without exactly two dots has no expiry.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/jwt.h"
#include "tests/fuzz/fuzz_check.h"

namespace treezor::broker {
namespace {

// {"alg":"none"}, base64url.
constexpr absl::string_view kUnsignedHeader = "eyJhbGciOiJub25lIn0";
const absl::Time kLatest = absl::FromUnixSeconds(253'402'300'799);

void CheckExpiry(absl::string_view token) {
  const std::optional<absl::Time> exp = JwtExpiry(token);
  if (!exp.has_value()) return;
  const std::string shown = absl::FormatTime(*exp);
  TZB_FUZZ_CHECK(*exp >= absl::UnixEpoch(), shown);
  TZB_FUZZ_CHECK(*exp <= kLatest, shown);
  TZB_FUZZ_CHECK(*exp == absl::FromUnixSeconds(absl::ToUnixSeconds(*exp)),
                 absl::StrCat(shown, " is not a whole second"));
  TZB_FUZZ_CHECK(std::count(token.begin(), token.end(), '.') == 2,
                 absl::StrCat("an expiry from a token without exactly two "
                              "dots: \"",
                              absl::CHexEscape(token), "\""));
}

}  // namespace
}  // namespace treezor::broker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  treezor::broker::CheckExpiry(input);
  treezor::broker::CheckExpiry(
      absl::StrCat(treezor::broker::kUnsignedHeader, ".",
                   absl::WebSafeBase64Escape(input), "."));
  return 0;
}
