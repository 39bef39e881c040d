// Fuzz target: config JSON parsing and validation (server/config.h).
//
// The sandbox. ValidateConfig opens the files a config names, and the fuzzer
// must never read outside a directory of its own. LLVMFuzzerInitialize
// creates a temp directory (TempDir: $TEST_TMPDIR, else /tmp; run.sh points
// it into the build dir) holding a few fixture files, and every parsed config
// has its path fields REWRITTEN before validation — rewritten rather than
// skipped, so that a mutated path does not waste the rest of the input:
//  - a path field is any string field, at any depth, whose proto name ends
//    in "_file", "_files", "_dir" or "_path" (config.proto's convention), so a
//    path field added later is sandboxed without touching this file;
//  - "" stays "" (exercises "required");
//  - a plain name (no '/', not "." or "..") becomes "<sandbox>/<name>": an
//    absolute path inside the sandbox, which may or may not exist;
//  - anything else (a path with '/', ".", "..") makes the input
//    uninteresting: return 0 before validating.
// The only other outside state ValidateConfig reads is the environment, for
// clientSecretEnv; it only tests whether a variable is set and non-empty.
// The fixtures set TZB_FUZZ_CLIENT_SECRET (and TZB_FUZZ_EMPTY, empty).
//
// Invariants, for any input:
//  - ParseConfigJson and ValidateConfig return OK or INVALID_ARGUMENT, and
//    every line of an error starts with "config: " followed by text;
//  - every ValidateConfig line is "config: <path>: <problem>" where <path> is
//    a JSON field path (lowerCamelCase names, [i] indexes) that exists in
//    the parsed config, indexes within the array's size;
//  - no message contains a fixture secret (a secret file's content or the
//    secret variable's value), unless the config itself spells it out;
//  - a config that validates yields effective settings inside the ranges
//    docs/CONFIG.md states.
#include <stdlib.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "server/config.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/testing/temp_dir.h"

namespace treezor::broker {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

constexpr absl::string_view kSecretInFile = "FUZZ-SECRET-IN-FILE-0f9e";
constexpr absl::string_view kPasswordInFile = "FUZZ-SECRET-PASSWORD-77ab";
constexpr absl::string_view kSecretInEnv = "FUZZ-SECRET-IN-ENV-3c1d";

// Created once by LLVMFuzzerInitialize; removed at a normal exit (a crash
// leaves it behind, which is why run.sh points $TEST_TMPDIR into the build
// dir).
std::unique_ptr<testing::TempDir>& Sandbox() {
  static std::unique_ptr<testing::TempDir> sandbox;
  return sandbox;
}

void WriteFixture(const std::string& name, absl::string_view content) {
  std::ofstream(Sandbox()->File(name), std::ios::binary)
      << std::string(content);
}

// ---------------------------------------------------------------------------
// Sandboxing the config's path fields.

bool IsPathField(const FieldDescriptor& field) {
  if (field.cpp_type() != FieldDescriptor::CPPTYPE_STRING) return false;
  for (absl::string_view suffix : {"_file", "_files", "_dir", "_path"}) {
    if (absl::EndsWith(field.name(), suffix)) return true;
  }
  return false;
}

// "" stays; a plain name goes into the sandbox; nullopt for anything else.
std::optional<std::string> SandboxedPath(const std::string& value) {
  if (value.empty()) return value;
  if (value == "." || value == ".." ||
      value.find('/') != std::string::npos) {
    return std::nullopt;
  }
  return Sandbox()->File(value);
}

// Rewrites every path field of `message`, recursively. False when one cannot
// be sandboxed.
bool SandboxPaths(Message& message) {
  const Descriptor& descriptor = *message.GetDescriptor();
  const Reflection& reflection = *message.GetReflection();
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field.is_repeated()) {
        for (int j = 0; j < reflection.FieldSize(message, &field); ++j) {
          if (!SandboxPaths(*reflection.MutableRepeatedMessage(&message,
                                                               &field, j))) {
            return false;
          }
        }
      } else if (reflection.HasField(message, &field) &&
                 !SandboxPaths(*reflection.MutableMessage(&message, &field))) {
        return false;
      }
    } else if (IsPathField(field)) {
      if (field.is_repeated()) {
        for (int j = 0; j < reflection.FieldSize(message, &field); ++j) {
          std::optional<std::string> path = SandboxedPath(
              reflection.GetRepeatedString(message, &field, j));
          if (!path.has_value()) return false;
          reflection.SetRepeatedString(&message, &field, j, *std::move(path));
        }
      } else {
        std::optional<std::string> path =
            SandboxedPath(reflection.GetString(message, &field));
        if (!path.has_value()) return false;
        reflection.SetString(&message, &field, *std::move(path));
      }
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// Checking error messages.

const FieldDescriptor* FindFieldByJsonName(const Descriptor& descriptor,
                                           absl::string_view name) {
  for (int i = 0; i < descriptor.field_count(); ++i) {
    if (descriptor.field(i)->json_name() == name) return descriptor.field(i);
  }
  return nullptr;
}

// Whether `path` ("tenants[1].upstreamTls.certFile") names a field that
// exists in `config`, every index within its array. Paths may end at any
// field (a message, an array, a scalar).
bool PathExists(absl::string_view path, const Message& config) {
  const Message* message = &config;
  const std::vector<absl::string_view> segments = absl::StrSplit(path, '.');
  for (size_t s = 0; s < segments.size(); ++s) {
    if (message == nullptr) return false;  // a segment after a scalar
    absl::string_view name = segments[s];
    std::optional<int> index;
    if (const size_t open = name.find('['); open != absl::string_view::npos) {
      absl::string_view digits = name.substr(open + 1);
      int i = 0;
      if (!absl::ConsumeSuffix(&digits, "]") || digits.empty() ||
          !absl::SimpleAtoi(digits, &i) || i < 0) {
        return false;
      }
      index = i;
      name = name.substr(0, open);
    }
    const FieldDescriptor* field =
        FindFieldByJsonName(*message->GetDescriptor(), name);
    if (field == nullptr) return false;
    const Reflection& reflection = *message->GetReflection();
    if (index.has_value()) {
      if (!field->is_repeated() ||
          *index >= reflection.FieldSize(*message, field)) {
        return false;
      }
      message = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
                    ? &reflection.GetRepeatedMessage(*message, field, *index)
                    : nullptr;
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
               !field->is_repeated()) {
      message = &reflection.GetMessage(*message, field);
    } else {
      message = nullptr;  // a scalar or a whole array: the path must end
    }
  }
  return true;
}

// "config: <text>" lines; returns them without the prefix.
std::vector<absl::string_view> ProblemLines(const absl::Status& status) {
  TZB_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
                 status.ToString());
  std::vector<absl::string_view> problems;
  for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
    absl::string_view problem = line;
    TZB_FUZZ_CHECK(absl::ConsumePrefix(&problem, "config: ") &&
                       !absl::StripAsciiWhitespace(problem).empty(),
                   absl::StrCat("line \"", line, "\" of: ", status.message()));
    problems.push_back(problem);
  }
  return problems;
}

// Secrets that `source` (what the config spells out) does not contain must
// not appear in `message`.
void CheckNoSecret(absl::string_view message, absl::string_view source) {
  for (absl::string_view secret :
       {kSecretInFile, kPasswordInFile, kSecretInEnv}) {
    if (absl::StrContains(source, secret)) continue;
    TZB_FUZZ_CHECK(!absl::StrContains(message, secret),
                   absl::StrCat("a secret in: ", message));
  }
}

void CheckEffectiveSettings(const v1::BrokerConfig& config) {
  const BrokerSettings settings = ResolveSettings(config);
  const RenewalSettings& r = settings.renewal;
  const std::string shown = config.renewal().ShortDebugString();
  TZB_FUZZ_CHECK(r.renew_remaining_fraction > 0 && r.renew_remaining_fraction < 1,
                 shown);
  TZB_FUZZ_CHECK(r.jitter_fraction >= 0 &&
                     r.jitter_fraction < r.renew_remaining_fraction,
                 shown);
  TZB_FUZZ_CHECK(r.min_remaining_fraction >= 0 && r.min_remaining_fraction < 1,
                 shown);
  TZB_FUZZ_CHECK(r.min_remaining >= absl::ZeroDuration(), shown);
  for (absl::Duration d : {r.idle_timeout, r.initial_backoff, r.max_backoff,
                           r.refused_backoff, r.refresh_token_max_age}) {
    TZB_FUZZ_CHECK(d > absl::ZeroDuration(), shown);
  }
  TZB_FUZZ_CHECK(r.max_backoff >= r.initial_backoff, shown);

  TZB_FUZZ_CHECK(r.min_token_lifetime > absl::ZeroDuration() &&
                     r.rejected_token_min_interval > absl::ZeroDuration(),
                 shown);
  const UpstreamSettings& u = settings.upstream;
  TZB_FUZZ_CHECK(u.max_concurrent_requests >= 1 &&
                     u.max_concurrent_requests <= 1024,
                 config.upstream().ShortDebugString());
  TZB_FUZZ_CHECK(u.connect_timeout > absl::ZeroDuration() &&
                     u.request_timeout > absl::ZeroDuration(),
                 config.upstream().ShortDebugString());
  TZB_FUZZ_CHECK(u.connect_timeout <= u.request_timeout &&
                     u.request_timeout <= absl::Seconds(120),
                 config.upstream().ShortDebugString());
  TZB_FUZZ_CHECK(settings.shutdown_grace_period >= absl::ZeroDuration(),
                 config.shutdown_grace_period().ShortDebugString());
  TZB_FUZZ_CHECK(settings.server_tls.refresh_interval > absl::ZeroDuration(),
                 config.server_tls().ShortDebugString());
  // Every limit of a valid config is on: no guard switched off by a 0.
  const LimitsSettings& l = settings.limits;
  const std::string limits = config.limits().ShortDebugString();
  for (absl::Duration d : {l.handshake_timeout, l.max_connection_age,
                           l.max_connection_idle, l.min_ping_interval,
                           l.health_max_connection_idle}) {
    TZB_FUZZ_CHECK(d > absl::ZeroDuration(), limits);
  }
  TZB_FUZZ_CHECK(l.max_connection_age_grace >= absl::ZeroDuration(), limits);
  for (int64_t n : {l.memory_bytes, l.health_memory_bytes,
                    int64_t{l.max_concurrent_streams},
                    int64_t{l.health_max_concurrent_streams},
                    int64_t{l.max_watch_streams_per_caller},
                    int64_t{l.max_scope_sets_per_tenant},
                    int64_t{l.max_scope_sets_per_caller},
                    int64_t{l.max_connections},
                    int64_t{l.max_connections_per_peer},
                    int64_t{l.health_max_connections},
                    int64_t{l.health_max_connections_per_peer}}) {
    TZB_FUZZ_CHECK(n > 0, limits);
  }
}

void CreateSandbox() {
  Sandbox() = std::make_unique<testing::TempDir>();
  WriteFixture("tls.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n");
  WriteFixture("tls.key", "-----BEGIN PRIVATE KEY-----\nMIIE\n");
  WriteFixture("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIC\n");
  WriteFixture("client-secret", absl::StrCat(kSecretInFile, "\n"));
  WriteFixture("username", "fuzz-user\n");
  WriteFixture("password", kPasswordInFile);
  WriteFixture("empty", "");
  WriteFixture("newlines", "\n\r\n");
  ::mkdir(Sandbox()->File("dir").c_str(), 0700);  // not a regular file
  ::setenv("TZB_FUZZ_CLIENT_SECRET", std::string(kSecretInEnv).c_str(), 1);
  ::setenv("TZB_FUZZ_EMPTY", "", 1);
}

void CheckConfig(absl::string_view json) {
  absl::StatusOr<v1::BrokerConfig> config = ParseConfigJson(json);
  if (!config.ok()) {
    // No file or variable has been read yet: no secret to look for.
    ProblemLines(config.status());
    return;
  }
  if (!SandboxPaths(*config)) return;

  const absl::Status status = ValidateConfig(*config);
  if (status.ok()) {
    CheckEffectiveSettings(*config);
    return;
  }
  for (absl::string_view problem : ProblemLines(status)) {
    const size_t colon = problem.find(": ");
    TZB_FUZZ_CHECK(colon != absl::string_view::npos &&
                       PathExists(problem.substr(0, colon), *config),
                   absl::StrCat("no field path in \"", problem, "\" of: ",
                                status.message()));
  }
  CheckNoSecret(status.message(), config->SerializeAsString());
}

}  // namespace
}  // namespace treezor::broker

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  treezor::broker::CreateSandbox();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  treezor::broker::CheckConfig(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
