#include "server/jwt.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace treezor::broker {
namespace {

// A payload larger than this is not a token we want to parse.
constexpr size_t kMaxPayloadChars = 16 * 1024;
// 9999-12-31T23:59:59Z: beyond this absl::Time formatting and most peers
// disagree, and no real token lives that long.
constexpr double kMaxExpSeconds = 253402300799.0;

}  // namespace

std::optional<absl::Time> JwtExpiry(absl::string_view token) {
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  // header.payload.signature (signature empty for alg "none").
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      parts[1].size() > kMaxPayloadChars) {
    return std::nullopt;
  }
  std::string payload_json;
  if (!absl::WebSafeBase64Unescape(parts[1], &payload_json)) {
    return std::nullopt;
  }
  google::protobuf::Struct payload;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(payload_json.data(),
                                         payload_json.size()),
           &payload)
           .ok()) {
    return std::nullopt;
  }
  const auto it = payload.fields().find("exp");
  if (it == payload.fields().end() || !it->second.has_number_value()) {
    return std::nullopt;
  }
  const double exp = it->second.number_value();
  if (!std::isfinite(exp) || exp <= 0 || exp > kMaxExpSeconds) {
    return std::nullopt;
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(exp));
}

}  // namespace treezor::broker
