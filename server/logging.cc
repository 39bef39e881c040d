#include "server/logging.h"

#include <atomic>
#include <cstdio>
#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/sync.h"

namespace treezor::broker {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

struct SinkState {
  Mutex mu;
  LogSink sink ABSL_GUARDED_BY(mu);
};

SinkState& State() {
  static SinkState* const state = new SinkState;
  return *state;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

}  // namespace

namespace internal {

// Hand-written rather than protobuf's JSON printer: this runs on every
// GetToken (the audit line), and building a google.protobuf.Struct per line
// costs more than the RPC's own work.
void AppendJsonString(absl::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace internal

void Log(LogLevel level, absl::string_view message,
         absl::Span<const LogField> fields) {
  if (static_cast<int>(level) < min_level.load(std::memory_order_relaxed)) {
    return;
  }
  std::string line;
  line.reserve(128 + message.size());
  line.append("{\"time\":\"");
  line.append(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                               absl::UTCTimeZone()));
  line.append("\",\"level\":\"");
  line.append(LevelName(level));
  line.append("\",\"msg\":");
  internal::AppendJsonString(message, &line);
  for (const LogField& f : fields) {
    line.push_back(',');
    internal::AppendJsonString(f.key, &line);
    line.push_back(':');
    internal::AppendJsonString(f.value, &line);
  }
  line.push_back('}');

  SinkState& state = State();
  MutexLock lock(&state.mu);
  if (state.sink) {
    state.sink(line);
    return;
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void SetMinLogLevel(LogLevel level) {
  min_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void SetLogSink(LogSink sink) {
  SinkState& state = State();
  MutexLock lock(&state.mu);
  state.sink = std::move(sink);
}

}  // namespace treezor::broker
