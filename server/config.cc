#include "server/config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/proto_time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/quote.h"
#include "server/scope_set.h"
#include "server/secret_reader.h"

namespace treezor::broker {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Value;

// Where errors say they come from when no file is involved.
constexpr absl::string_view kConfigSource = "config";

// ---------------------------------------------------------------------------
// Problems: every error found, one a line.

class Problems {
 public:
  // `path` is a JSON field path ("tenants[1].upstreamTls"), empty for the
  // document itself.
  void Add(absl::string_view path, absl::string_view problem) {
    lines_.push_back(path.empty() ? std::string(problem)
                                  : absl::StrCat(path, ": ", problem));
  }
  // A status whose message already starts with the field path (ValidateScope).
  void Add(const absl::Status& status) {
    if (!status.ok()) lines_.emplace_back(status.message());
  }
  // A status whose message starts with a field name relative to `parent`
  // (the secret reader's "clientSecretFile: ...").
  void AddWithin(absl::string_view parent, const absl::Status& status) {
    if (!status.ok()) {
      lines_.push_back(absl::StrCat(parent, ".", status.message()));
    }
  }
  bool empty() const { return lines_.empty(); }

  // INVALID_ARGUMENT, each line prefixed with "<source>: ".
  absl::Status ToStatus(absl::string_view source) const {
    if (lines_.empty()) return absl::OkStatus();
    std::string message;
    for (const std::string& line : lines_) {
      if (!message.empty()) message += '\n';
      absl::StrAppend(&message, source, ": ", line);
    }
    return absl::InvalidArgumentError(message);
  }

 private:
  std::vector<std::string> lines_;
};

std::string Field(absl::string_view parent, absl::string_view name) {
  return parent.empty() ? std::string(name) : absl::StrCat(parent, ".", name);
}
std::string Index(absl::string_view parent, size_t i) {
  return absl::StrCat(parent, "[", i, "]");
}

// ---------------------------------------------------------------------------
// Parsing: a structural check of the JSON against the message descriptors,
// because protobuf 3.21's JSON parser reports paths with proto field names in
// a mixed form ("(tenants[1].upstream_tls) crtFile: Cannot find field."),
// silently accepts a scalar where an array is expected, accepts proto field
// names besides JSON names, and lets a duplicate key override the first.

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
              const Value& v, Problems& problems) {
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
                  const std::string& path, Problems& problems);

void CheckIntegral(const Value& v, int64_t min, int64_t max,
                   const std::string& path, Problems& problems) {
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
                   const std::string& path, Problems& problems) {
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
                const std::string& path, Problems& problems) {
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
                  const std::string& path, Problems& problems) {
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

// ---------------------------------------------------------------------------
// Files and values.

struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};

bool IsWildcardHost(absl::string_view host) {
  return host == "0.0.0.0" || host == "::";
}

// "host:port" or "[v6]:port"; port 0 asks the kernel for a free port.
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

// https://host[:port][/path], without trailing slash, query or fragment.
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

bool IsTenantName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
           c == '_' || c == '-';
  });
}

bool IsEnvVarName(absl::string_view name) {
  if (name.empty() ||
      absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// ---------------------------------------------------------------------------
// Validation.

class Validator {
 public:
  explicit Validator(Problems& problems) : problems_(problems) {}

  void Validate(const v1::BrokerConfig& config) {
    ValidateAddresses(config);
    ValidateServerTls(config);
    ValidateTenants(config);
    ValidateCallers(config);
    for (int i = 0; i < config.admins_size(); ++i) {
      if (config.admins(i).identity().empty()) {
        problems_.Add(Index("admins", i) + ".identity", "required");
      }
    }
    ValidateRenewal(config);
    ValidateUpstream(config);
    if (config.has_shutdown_grace_period() &&
        FromProtoDuration(config.shutdown_grace_period()) < absl::ZeroDuration()) {
      problems_.Add("shutdownGracePeriod",
                    absl::StrCat("must not be negative, got ",
                                 absl::FormatDuration(FromProtoDuration(
                                     config.shutdown_grace_period()))));
    }
  }

 private:
  // A file that must exist, be a readable regular file and not be empty.
  // (Read through a wiped buffer: it may be a private key.)
  void RequireFile(const std::string& path, const std::string& file) {
    if (file.empty()) {
      problems_.Add(path, "required");
      return;
    }
    absl::StatusOr<Secret> content = ReadWholeFile(file);
    if (!content.ok()) {
      problems_.Add(path, content.status().message());
    } else if (content->empty()) {
      problems_.Add(path, absl::StrCat(Quote(file), " is empty"));
    }
  }

  // A secret of tenant `path`, read exactly as a token request reads it
  // (server/secret_reader.h); its message names the field.
  void RequireSecret(const std::string& path,
                     const absl::StatusOr<Secret>& secret) {
    problems_.AddWithin(path, secret.status());
  }

  void RequirePositive(const std::string& path,
                       const google::protobuf::Duration& d) {
    if (FromProtoDuration(d) <= absl::ZeroDuration()) {
      problems_.Add(path, absl::StrCat("must be positive, got ",
                                       absl::FormatDuration(FromProtoDuration(d))));
    }
  }

  void ValidateScopes(
      const std::string& path,
      const google::protobuf::RepeatedPtrField<std::string>& scopes) {
    for (int i = 0; i < scopes.size(); ++i) {
      problems_.Add(ValidateScope(scopes[i], Index(path, i)));
    }
  }

  void ValidateAddresses(const v1::BrokerConfig& config) {
    struct Address {
      const char* path;
      const std::string& value;
      HostPort parsed;
    };
    std::vector<Address> valid;
    for (Address a :
         {Address{"listenAddress", config.listen_address(), {}},
          Address{"healthListenAddress", config.health_listen_address(), {}},
          Address{
              "metricsListenAddress", config.metrics_listen_address(), {}}}) {
      if (a.value.empty()) {
        if (a.path == absl::string_view("listenAddress")) {
          problems_.Add(a.path, "required");
        }
        continue;
      }
      absl::StatusOr<HostPort> parsed = ParseHostPort(a.value);
      if (!parsed.ok()) {
        problems_.Add(a.path, parsed.status().message());
        continue;
      }
      for (const Address& earlier : valid) {
        if (SameBinding(earlier.parsed, *parsed)) {
          problems_.Add(
              a.path,
              absl::StrCat(Quote(a.value), " overlaps ", earlier.path, " ",
                           Quote(earlier.value), ": use another port"));
        }
      }
      a.parsed = *std::move(parsed);
      valid.push_back(a);
    }
  }

  void ValidateServerTls(const v1::BrokerConfig& config) {
    const v1::ServerTls& tls = config.server_tls();
    RequireFile("serverTls.certFile", tls.cert_file());
    RequireFile("serverTls.keyFile", tls.key_file());
    RequireFile("serverTls.clientCaFile", tls.client_ca_file());
    if (tls.has_refresh_interval()) {
      RequirePositive("serverTls.refreshInterval", tls.refresh_interval());
    }
  }

  void ValidateTenants(const v1::BrokerConfig& config) {
    if (config.tenants().empty()) {
      problems_.Add("tenants", "at least one tenant is required");
    }
    absl::flat_hash_map<std::string, int> first_index;
    for (int i = 0; i < config.tenants_size(); ++i) {
      const v1::Tenant& t = config.tenants(i);
      const std::string path = Index("tenants", i);
      if (!IsTenantName(t.name())) {
        problems_.Add(Field(path, "name"),
                      t.name().empty() ? "required"
                                       : absl::StrCat(Quote(t.name()),
                                                      " must be 1 to 64 of "
                                                      "[A-Za-z0-9._-]"));
      } else if (auto [it, inserted] = first_index.try_emplace(t.name(), i);
                 !inserted) {
        problems_.Add(Field(path, "name"),
                      absl::StrCat(Quote(t.name()), " is already the name of ",
                                   Index("tenants", it->second)));
      }
      ValidateTenant(t, path);
    }
  }

  void ValidateTenant(const v1::Tenant& t, const std::string& path) {
    if (t.base_url().empty()) {
      problems_.Add(Field(path, "baseUrl"), "required");
    } else if (std::optional<std::string> problem =
                   BaseUrlProblem(t.base_url())) {
      problems_.Add(Field(path, "baseUrl"), *problem);
    }

    const bool known_grant = t.grant_type().empty() ||
                             t.grant_type() == "client_credentials" ||
                             t.grant_type() == "password";
    if (!known_grant) {
      problems_.Add(Field(path, "grantType"),
                    absl::StrCat(Quote(t.grant_type()),
                                 " must be \"client_credentials\" (the "
                                 "default) or \"password\""));
    }
    if (t.client_id().empty())
      problems_.Add(Field(path, "clientId"), "required");

    if (!t.client_secret_file().empty() && !t.client_secret_env().empty()) {
      problems_.Add(Field(path, "clientSecretEnv"),
                    "set only one of clientSecretFile and clientSecretEnv");
    } else if (t.client_secret_file().empty() &&
               !t.client_secret_env().empty() &&
               !IsEnvVarName(t.client_secret_env())) {
      problems_.Add(Field(path, "clientSecretEnv"),
                    absl::StrCat(Quote(t.client_secret_env()),
                                 " is not an environment variable name"));
    } else {
      // Also "clientSecretFile: required (or clientSecretEnv)" when neither
      // is set.
      RequireSecret(path, ReadClientSecret(t));
    }

    if (t.grant_type() == "password") {
      RequireSecret(path, ReadSecretFile("usernameFile", t.username_file()));
      RequireSecret(path, ReadSecretFile("passwordFile", t.password_file()));
    } else if (known_grant) {
      for (const auto& [name, value] :
           {std::pair<const char*, const std::string&>{"usernameFile",
                                                       t.username_file()},
            std::pair<const char*, const std::string&>{"passwordFile",
                                                       t.password_file()}}) {
        if (!value.empty()) {
          problems_.Add(Field(path, name), "only for grantType \"password\"");
        }
      }
    }

    ValidateScopes(Field(path, "defaultScopes"), t.default_scopes());
    ValidateScopes(Field(path, "allowedScopes"), t.allowed_scopes());
    if (!t.allowed_scopes().empty()) {
      const ScopeSet allowed = ScopeSet::FromList(t.allowed_scopes());
      for (int i = 0; i < t.default_scopes_size(); ++i) {
        if (!allowed.Contains(t.default_scopes(i))) {
          problems_.Add(Index(Field(path, "defaultScopes"), i),
                        absl::StrCat(Quote(t.default_scopes(i)),
                                     " is not in allowedScopes"));
        }
      }
    }

    const std::string tls = Field(path, "upstreamTls");
    if (t.upstream_tls().cert_file().empty()) {
      problems_.Add(Field(tls, "certFile"),
                    "required (Treezor requires mutual TLS)");
    } else {
      RequireFile(Field(tls, "certFile"), t.upstream_tls().cert_file());
    }
    if (t.upstream_tls().key_file().empty()) {
      problems_.Add(Field(tls, "keyFile"),
                    "required (Treezor requires mutual TLS)");
    } else {
      RequireFile(Field(tls, "keyFile"), t.upstream_tls().key_file());
    }
    if (!t.upstream_tls().ca_file().empty()) {
      RequireFile(Field(tls, "caFile"), t.upstream_tls().ca_file());
    }

    const std::string& encoding = t.request_encoding();
    if (!encoding.empty() && encoding != "form" && encoding != "multipart" &&
        encoding != "json") {
      problems_.Add(Field(path, "requestEncoding"),
                    absl::StrCat(Quote(encoding),
                                 " must be \"form\" (the default), "
                                 "\"multipart\" or \"json\""));
    }
  }

  void ValidateCallers(const v1::BrokerConfig& config) {
    absl::flat_hash_map<std::string, int> tenants;
    for (const v1::Tenant& t : config.tenants()) tenants.emplace(t.name(), 0);
    absl::flat_hash_map<std::string, int> first_index;
    for (int i = 0; i < config.callers_size(); ++i) {
      const v1::Caller& c = config.callers(i);
      const std::string path = Index("callers", i);
      if (c.identity().empty()) {
        problems_.Add(Field(path, "identity"), "required");
      } else if (auto [it, inserted] = first_index.try_emplace(c.identity(), i);
                 !inserted) {
        problems_.Add(
            Field(path, "identity"),
            absl::StrCat(Quote(c.identity()), " is already listed in ",
                         Index("callers", it->second),
                         ": merge the two entries"));
      }
      if (c.tenants().empty()) {
        problems_.Add(Field(path, "tenants"),
                      "at least one tenant is required");
      }
      for (int j = 0; j < c.tenants_size(); ++j) {
        if (!tenants.contains(c.tenants(j))) {
          problems_.Add(
              Index(Field(path, "tenants"), j),
              absl::StrCat("no tenant is named ", Quote(c.tenants(j))));
        }
      }
      ValidateScopes(Field(path, "scopes"), c.scopes());
    }
  }

  void ValidateRenewal(const v1::BrokerConfig& config) {
    const v1::Renewal& r = config.renewal();
    const RenewalSettings s = ResolveSettings(config).renewal;
    // Where a cross-field rule is broken: the field the user wrote.
    auto either = [](bool first_set, const char* first, const char* second) {
      return absl::StrCat("renewal.", first_set ? first : second);
    };
    auto shown = [](bool set, auto value) {
      return absl::StrCat(value, set ? "" : ", the default");
    };

    if (r.has_renew_remaining_fraction() &&
        !(s.renew_remaining_fraction > 0 && s.renew_remaining_fraction < 1)) {
      problems_.Add(
          "renewal.renewRemainingFraction",
          absl::StrCat("must be in (0, 1), got ", s.renew_remaining_fraction));
    } else if (!(s.jitter_fraction >= 0 &&
                 s.jitter_fraction < s.renew_remaining_fraction)) {
      problems_.Add(
          either(r.has_jitter_fraction(), "jitterFraction",
                 "renewRemainingFraction"),
          absl::StrCat("jitterFraction (",
                       shown(r.has_jitter_fraction(), s.jitter_fraction),
                       ") must be in [0, renewRemainingFraction (",
                       shown(r.has_renew_remaining_fraction(),
                             s.renew_remaining_fraction),
                       "))"));
    }
    if (r.has_min_remaining_fraction() &&
        !(s.min_remaining_fraction >= 0 && s.min_remaining_fraction < 1)) {
      problems_.Add(
          "renewal.minRemainingFraction",
          absl::StrCat("must be in [0, 1), got ", s.min_remaining_fraction));
    }
    if (r.has_min_remaining() && s.min_remaining < absl::ZeroDuration()) {
      problems_.Add("renewal.minRemaining",
                    absl::StrCat("must not be negative, got ",
                                 absl::FormatDuration(s.min_remaining)));
    }
    if (r.has_idle_timeout()) {
      RequirePositive("renewal.idleTimeout", r.idle_timeout());
    }
    if (r.has_initial_backoff()) {
      RequirePositive("renewal.initialBackoff", r.initial_backoff());
    }
    if (r.has_max_backoff()) {
      RequirePositive("renewal.maxBackoff", r.max_backoff());
    }
    if (r.has_refused_backoff()) {
      RequirePositive("renewal.refusedBackoff", r.refused_backoff());
    }
    if (r.has_refresh_token_max_age()) {
      RequirePositive("renewal.refreshTokenMaxAge", r.refresh_token_max_age());
    }
    if (s.initial_backoff > absl::ZeroDuration() &&
        s.max_backoff < s.initial_backoff) {
      problems_.Add(either(r.has_max_backoff(), "maxBackoff", "initialBackoff"),
                    absl::StrCat("maxBackoff (",
                                 shown(r.has_max_backoff(),
                                       absl::FormatDuration(s.max_backoff)),
                                 ") must not be less than initialBackoff (",
                                 shown(r.has_initial_backoff(),
                                       absl::FormatDuration(s.initial_backoff)),
                                 ")"));
    }
  }

  void ValidateUpstream(const v1::BrokerConfig& config) {
    const v1::Upstream& u = config.upstream();
    if (u.has_max_concurrent_requests() &&
        (u.max_concurrent_requests() < 1 ||
         u.max_concurrent_requests() > 1024)) {
      problems_.Add("upstream.maxConcurrentRequests",
                    absl::StrCat("must be in [1, 1024], got ",
                                 u.max_concurrent_requests()));
    }
    if (u.has_connect_timeout()) {
      RequirePositive("upstream.connectTimeout", u.connect_timeout());
    }
    if (u.has_request_timeout()) {
      RequirePositive("upstream.requestTimeout", u.request_timeout());
    }
  }

  Problems& problems_;
};

absl::StatusOr<v1::BrokerConfig> Parse(absl::string_view json,
                                       absl::string_view source) {
  Problems problems;
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

}  // namespace

absl::StatusOr<v1::BrokerConfig> ParseConfigJson(absl::string_view json) {
  return Parse(json, kConfigSource);
}

absl::Status ValidateConfig(const v1::BrokerConfig& config) {
  Problems problems;
  Validator(problems).Validate(config);
  return problems.ToStatus(kConfigSource);
}

absl::StatusOr<v1::BrokerConfig> LoadConfigFile(const std::string& path) {
  absl::StatusOr<Secret> json = ReadWholeFile(path);
  if (!json.ok()) {
    return absl::Status(json.status().code(),
                        absl::StrCat("config file: ", json.status().message()));
  }
  absl::StatusOr<v1::BrokerConfig> config = Parse(json->view(), path);
  if (!config.ok()) return config.status();
  Problems problems;
  Validator(problems).Validate(*config);
  if (!problems.empty()) return problems.ToStatus(path);
  return config;
}

BrokerSettings ResolveSettings(const v1::BrokerConfig& config) {
  BrokerSettings s;
  const v1::Renewal& r = config.renewal();
  RenewalSettings& renewal = s.renewal;
  if (r.has_renew_remaining_fraction()) {
    renewal.renew_remaining_fraction = r.renew_remaining_fraction();
  }
  if (r.has_jitter_fraction()) renewal.jitter_fraction = r.jitter_fraction();
  if (r.has_min_remaining()) {
    renewal.min_remaining = FromProtoDuration(r.min_remaining());
  }
  if (r.has_min_remaining_fraction()) {
    renewal.min_remaining_fraction = r.min_remaining_fraction();
  }
  if (r.has_idle_timeout()) {
    renewal.idle_timeout = FromProtoDuration(r.idle_timeout());
  }
  if (r.has_initial_backoff()) {
    renewal.initial_backoff = FromProtoDuration(r.initial_backoff());
  }
  if (r.has_max_backoff()) {
    renewal.max_backoff = FromProtoDuration(r.max_backoff());
  }
  if (r.has_refused_backoff()) {
    renewal.refused_backoff = FromProtoDuration(r.refused_backoff());
  }
  if (r.has_refresh_token_max_age()) {
    renewal.refresh_token_max_age =
        FromProtoDuration(r.refresh_token_max_age());
  }

  const v1::Upstream& u = config.upstream();
  if (u.has_max_concurrent_requests()) {
    s.upstream.max_concurrent_requests = u.max_concurrent_requests();
  }
  if (u.has_connect_timeout()) {
    s.upstream.connect_timeout = FromProtoDuration(u.connect_timeout());
  }
  if (u.has_request_timeout()) {
    s.upstream.request_timeout = FromProtoDuration(u.request_timeout());
  }

  if (r.has_min_token_lifetime()) {
    renewal.min_token_lifetime = FromProtoDuration(r.min_token_lifetime());
  }
  if (r.has_rejected_token_min_interval()) {
    renewal.rejected_token_min_interval =
        FromProtoDuration(r.rejected_token_min_interval());
  }

  const v1::Limits& l = config.limits();
  LimitsSettings& limits = s.limits;
  if (l.has_handshake_timeout()) {
    limits.handshake_timeout = FromProtoDuration(l.handshake_timeout());
  }
  if (l.has_memory_bytes()) limits.memory_bytes = l.memory_bytes();
  if (l.has_max_concurrent_streams()) {
    limits.max_concurrent_streams = l.max_concurrent_streams();
  }
  if (l.has_max_connection_age()) {
    limits.max_connection_age = FromProtoDuration(l.max_connection_age());
  }
  if (l.has_max_connection_age_grace()) {
    limits.max_connection_age_grace =
        FromProtoDuration(l.max_connection_age_grace());
  }
  if (l.has_max_connection_idle()) {
    limits.max_connection_idle = FromProtoDuration(l.max_connection_idle());
  }
  if (l.has_min_ping_interval()) {
    limits.min_ping_interval = FromProtoDuration(l.min_ping_interval());
  }
  if (l.has_max_watch_streams_per_caller()) {
    limits.max_watch_streams_per_caller = l.max_watch_streams_per_caller();
  }
  if (l.has_max_scope_sets_per_tenant()) {
    limits.max_scope_sets_per_tenant = l.max_scope_sets_per_tenant();
  }
  if (l.has_max_scope_sets_per_caller()) {
    limits.max_scope_sets_per_caller = l.max_scope_sets_per_caller();
  }
  if (l.has_health_memory_bytes()) {
    limits.health_memory_bytes = l.health_memory_bytes();
  }
  if (l.has_health_max_concurrent_streams()) {
    limits.health_max_concurrent_streams = l.health_max_concurrent_streams();
  }
  if (l.has_health_max_connection_idle()) {
    limits.health_max_connection_idle =
        FromProtoDuration(l.health_max_connection_idle());
  }

  if (config.server_tls().has_refresh_interval()) {
    s.server_tls.refresh_interval =
        FromProtoDuration(config.server_tls().refresh_interval());
  }
  if (config.has_shutdown_grace_period()) {
    s.shutdown_grace_period = FromProtoDuration(config.shutdown_grace_period());
  }
  return s;
}

}  // namespace treezor::broker
