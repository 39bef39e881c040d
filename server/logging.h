// Structured logging: one JSON object per line on stderr, e.g.
//   {"time":"2026-11-27T21:00:00.123Z","level":"info","msg":"token renewed",
//    "tenant":"acme","token_fp":"3f2a9c01b7e4"}
//
// Never pass a secret or a token as a field: name a token by
// TokenFingerprint(). Tests install a sink to capture lines and prove that.
//
// Thread-safety: all functions are thread-safe; lines are written whole and
// in order.
#ifndef TREEZOR_BROKER_SERVER_LOGGING_H_
#define TREEZOR_BROKER_SERVER_LOGGING_H_

#include <functional>
#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace treezor::broker {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

struct LogField {
  LogField(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  LogField(absl::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(absl::string_view k, const char* v) : key(k), value(v) {}
  template <typename T,
            typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  LogField(absl::string_view k, T v) : key(k), value(absl::StrCat(v)) {}
  absl::string_view key;
  std::string value;
};

void Log(LogLevel level, absl::string_view message,
         absl::Span<const LogField> fields);
inline void Log(LogLevel level, absl::string_view message,
                std::initializer_list<LogField> fields = {}) {
  Log(level, message, absl::Span<const LogField>(fields.begin(), fields.size()));
}

// Log with the fields already formatted: `fields_json` is empty or
// `,"key":value` pairs, valid JSON (keys and string values written with
// internal::AppendJsonString, numbers as digits). The audit line uses it: it
// keeps a caller's fields formatted once per certificate, not once per call.
void LogJson(LogLevel level, absl::string_view message,
             absl::string_view fields_json);

inline void LogInfo(absl::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kInfo, m, f);
}
inline void LogWarning(absl::string_view m,
                       std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kWarning, m, f);
}
inline void LogError(absl::string_view m,
                     std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kError, m, f);
}

// Lines go to stderr through a writer thread (errors are written at once);
// FlushLogs() writes whatever is pending. It also runs at exit().
void FlushLogs();

// Lines below `level` are dropped. Default kInfo.
void SetMinLogLevel(LogLevel level);

// Replaces stderr as the destination (nullptr restores stderr). Each call of
// `sink` receives one complete line without the trailing newline.
using LogSink = std::function<void(absl::string_view line)>;
void SetLogSink(LogSink sink);

namespace internal {
// A thread keeps its log-line buffers for the next line up to this capacity.
inline constexpr size_t kMaxReusedLogBuffer = 4096;
// Empties a thread's reused log buffer for its next line, letting it go if a
// long line grew it past kMaxReusedLogBuffer.
inline void ResetReusedLogBuffer(std::string* buffer) {
  if (buffer->capacity() > kMaxReusedLogBuffer) *buffer = std::string();
  buffer->clear();
}
// Appends `s` as a JSON string literal (with quotes) to `out`.
void AppendJsonString(absl::string_view s, std::string* out);
// Appends `,"key":` then `value` as a JSON string: one field for LogJson.
void AppendJsonField(absl::string_view key, absl::string_view value,
                     std::string* out);
}  // namespace internal

}  // namespace treezor::broker

#endif  // TREEZOR_BROKER_SERVER_LOGGING_H_
