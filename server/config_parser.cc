#include "server/config_parser.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/config_problems.h"
#include "server/quote.h"

namespace treezor::broker {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Value;
using internal::ConfigProblems;
using internal::Field;
using internal::Index;

// ---------------------------------------------------------------------------
// The structural check of the JSON against the message descriptors.

const char* JsonKind(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNullValue:
      return "null";
    case Value::kNumberValue:
      return "a number";
    case Value::kStringValue:
      return "a string";
    case Value::kBoolValue:
      return "a boolean";
    case Value::kStructValue:
      return "an object";
    case Value::kListValue:
      return "an array";
    case Value::KIND_NOT_SET:
      break;
  }
  return "nothing";
}

void Expected(absl::string_view path, absl::string_view expected,
              const Value& v, ConfigProblems& problems) {
  problems.Add(path,
               absl::StrCat("expected ", expected, ", got ", JsonKind(v)));
}

// protobuf's JSON form of google.protobuf.Duration ("-1.5s", "60s"), within
// its range (about ±10000 years).
bool IsDurationString(absl::string_view s) {
  constexpr int64_t kMaxSeconds = 315'576'000'000;
  if (!absl::ConsumeSuffix(&s, "s")) return false;
  absl::ConsumePrefix(&s, "-");
  absl::string_view whole = s, fraction;
  if (size_t dot = s.find('.'); dot != absl::string_view::npos) {
    whole = s.substr(0, dot);
    fraction = s.substr(dot + 1);
    if (fraction.empty() || fraction.size() > 9) return false;
  }
  int64_t seconds = 0;
  return !whole.empty() && whole.size() <= 12 &&
         whole.find_first_not_of("0123456789") == absl::string_view::npos &&
         fraction.find_first_not_of("0123456789") == absl::string_view::npos &&
         absl::SimpleAtoi(whole, &seconds) && seconds <= kMaxSeconds;
}

void CheckMessage(const Value& v, const Descriptor& descriptor,
                  const std::string& path, ConfigProblems& problems);

void CheckIntegral(const Value& v, int64_t min, int64_t max,
                   const std::string& path, ConfigProblems& problems) {
  if (v.kind_case() != Value::kNumberValue) {
    Expected(path, "an integer", v, problems);
    return;
  }
  const double d = v.number_value();
  if (d != std::trunc(d) || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    // Whole numbers in full (3000000000, not 3e+09).
    const std::string shown = d == std::trunc(d) && std::abs(d) < 1e18
                                  ? absl::StrCat(static_cast<int64_t>(d))
                                  : absl::StrCat(d);
    problems.Add(path, absl::StrCat("expected an integer in [", min, ", ", max,
                                    "], got ", shown));
  }
}

// One value of `field` (an element, for a repeated field).
void CheckSingular(const Value& v, const FieldDescriptor& field,
                   const std::string& path, ConfigProblems& problems) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      if (v.kind_case() != Value::kStringValue) {
        Expected(path, "a string", v, problems);
      }
      return;
    case FieldDescriptor::CPPTYPE_BOOL:
      if (v.kind_case() != Value::kBoolValue) {
        Expected(path, "true or false", v, problems);
      }
      return;
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      if (v.kind_case() != Value::kNumberValue) {
        Expected(path, "a number", v, problems);
      }
      return;
    case FieldDescriptor::CPPTYPE_INT32:
      CheckIntegral(v, std::numeric_limits<int32_t>::min(),
                    std::numeric_limits<int32_t>::max(), path, problems);
      return;
    case FieldDescriptor::CPPTYPE_UINT32:
      CheckIntegral(v, 0, std::numeric_limits<uint32_t>::max(), path, problems);
      return;
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      // Beyond 2^53 a JSON number is not exact anyway; protobuf decides.
      if (v.kind_case() != Value::kNumberValue &&
          v.kind_case() != Value::kStringValue) {
        Expected(path, "an integer", v, problems);
      }
      return;
    case FieldDescriptor::CPPTYPE_ENUM:
      if (v.kind_case() != Value::kStringValue &&
          v.kind_case() != Value::kNumberValue) {
        Expected(path, "an enum name", v, problems);
      }
      return;
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Descriptor& type = *field.message_type();
      if (type.full_name() == "google.protobuf.Duration") {
        if (v.kind_case() != Value::kStringValue) {
          Expected(path, "a duration string such as \"1.5s\"", v, problems);
        } else if (!IsDurationString(v.string_value())) {
          problems.Add(path, absl::StrCat("expected a duration such as "
                                          "\"30s\" or \"0.5s\" (at most "
                                          "315576000000s), got ",
                                          Quote(v.string_value())));
        }
      } else if (!absl::StartsWith(type.full_name(), "google.protobuf.")) {
        CheckMessage(v, type, path, problems);
      }
      // Other well-known types have JSON forms of their own: protobuf checks.
      return;
    }
  }
}

void CheckField(const Value& v, const FieldDescriptor& field,
                const std::string& path, ConfigProblems& problems) {
  if (v.kind_case() == Value::kNullValue) return;  // same as absent
  if (field.is_map()) {
    if (v.kind_case() != Value::kStructValue) {
      Expected(path, "an object", v, problems);
      return;
    }
    const FieldDescriptor& value_field = *field.message_type()->map_value();
    for (const auto& [key, element] : v.struct_value().fields()) {
      CheckSingular(element, value_field,
                    absl::StrCat(path, "[", Quote(key), "]"), problems);
    }
    return;
  }
  if (field.is_repeated()) {
    if (v.kind_case() != Value::kListValue) {
      Expected(path, "an array", v, problems);
      return;
    }
    for (int i = 0; i < v.list_value().values_size(); ++i) {
      const Value& element = v.list_value().values(i);
      if (element.kind_case() == Value::kNullValue) {
        problems.Add(Index(path, i), "null is not allowed in an array");
      } else {
        CheckSingular(element, field, Index(path, i), problems);
      }
    }
    return;
  }
  CheckSingular(v, field, path, problems);
}

// (protobuf 3.21's Descriptor has no FindFieldByJsonName.)
const FieldDescriptor* FindFieldByJsonName(const Descriptor& descriptor,
                                           absl::string_view name) {
  for (int i = 0; i < descriptor.field_count(); ++i) {
    if (descriptor.field(i)->json_name() == name) return descriptor.field(i);
  }
  return nullptr;
}

void CheckMessage(const Value& v, const Descriptor& descriptor,
                  const std::string& path, ConfigProblems& problems) {
  if (v.kind_case() != Value::kStructValue) {
    Expected(path, "an object", v, problems);
    return;
  }
  // Sorted, so that errors come in a stable order.
  std::vector<std::string> keys;
  for (const auto& [key, unused] : v.struct_value().fields()) {
    keys.push_back(key);
  }
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    const FieldDescriptor* field = FindFieldByJsonName(descriptor, key);
    if (field == nullptr) {
      // protobuf would accept the proto name too; the contract is one name.
      const FieldDescriptor* by_proto_name = descriptor.FindFieldByName(key);
      if (by_proto_name != nullptr) {
        problems.Add(
            path, absl::StrCat("unknown field ", Quote(key), " (did you mean ",
                               Quote(by_proto_name->json_name()), "?)"));
      } else {
        problems.Add(path, absl::StrCat("unknown field ", Quote(key)));
      }
      continue;
    }
    CheckField(v.struct_value().fields().at(key), *field, Field(path, key),
               problems);
  }
}

// protobuf's syntax errors are "<what>\n<~40 chars around>\n<caret>", and
// the text around may itself hold newlines: fold them into one line, quoting
// the text from the caret on. Anything else still becomes one line.
std::string DescribeSyntaxError(absl::string_view message) {
  const size_t first = message.find('\n');
  const size_t last = message.rfind('\n');
  if (first == absl::string_view::npos || first == last) {
    return absl::StrReplaceAll(message, {{"\n", " "}});
  }
  const absl::string_view around = message.substr(first + 1, last - first - 1);
  const size_t caret = message.substr(last + 1).find('^');
  absl::string_view rest =
      caret < around.size() ? around.substr(caret) : absl::string_view();
  return absl::StrCat(message.substr(0, first),
                      rest.empty() ? " (at the end of the input)"
                                   : absl::StrCat(" (at ", Quote(rest), ")"));
}

}  // namespace

absl::StatusOr<v1::BrokerConfig> ParseConfigJson(absl::string_view json,
                                                 absl::string_view source) {
  ConfigProblems problems;
  Value document;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(
          google::protobuf::StringPiece(json.data(), json.size()), &document);
      !parsed.ok()) {
    // Value's struct is a map: protobuf refuses a repeated key there (and
    // only there), naming the key but not its path.
    const std::string message(parsed.message());
    absl::string_view key(message);
    if (const size_t at = key.find("Repeated map key: '");
        at != absl::string_view::npos) {
      key.remove_prefix(at + sizeof("Repeated map key: '") - 1);
      key = key.substr(0, key.find('\''));
      problems.Add("", absl::StrCat("duplicate key ", Quote(key)));
    } else {
      problems.Add(
          "", absl::StrCat("invalid JSON: ", DescribeSyntaxError(message)));
    }
    return problems.ToStatus(source);
  }
  if (document.kind_case() != Value::kStructValue) {
    Expected("", "a JSON object", document, problems);
    return problems.ToStatus(source);
  }
  CheckMessage(document, *v1::BrokerConfig::descriptor(), "", problems);
  if (!problems.empty()) return problems.ToStatus(source);

  v1::BrokerConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(
          google::protobuf::StringPiece(json.data(), json.size()), &config,
          options);
      !parsed.ok()) {
    // Only what the structural check does not look at (e.g. an out-of-range
    // duration); protobuf's message uses proto field names.
    problems.Add("", std::string(parsed.message()));
    return problems.ToStatus(source);
  }
  return config;
}

}  // namespace treezor::broker
