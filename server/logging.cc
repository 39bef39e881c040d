#include "server/logging.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace treezor::broker {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

// Lines bound for stderr are appended to `pending` and written by one writer
// thread, so a caller (an RPC) does not make a write(2) per line; errors and a
// large backlog are written at once by the caller. `write_mu` orders writes
// (taken before `mu`).
struct SinkState {
  Mutex write_mu;
  Mutex mu;
  CondVar cv;
  LogSink sink ABSL_GUARDED_BY(mu);
  std::string pending ABSL_GUARDED_BY(mu);
  // What WritePending swaps `pending` with: emptied after each write but
  // keeping its capacity, so `pending` does not grow again from nothing
  // after every batch (a reallocation per line at a trickle of RPCs).
  std::string written ABSL_GUARDED_BY(write_mu);
  bool writer_started ABSL_GUARDED_BY(mu) = false;
};

constexpr size_t kMaxPendingBytes = 256 * 1024;
// The writer lets lines gather for this long (or this many bytes) before one
// write(2): at a steady trickle of RPCs a wake-up and a write per line cost
// more broker CPU than the RPC itself (tests/bench/README.md).
constexpr absl::Duration kGatherTime = absl::Milliseconds(5);
constexpr size_t kGatherBytes = 64 * 1024;

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

// Writes everything pending, in order.
void WritePending(SinkState& state) ABSL_LOCKS_EXCLUDED(state.mu) {
  MutexLock write_lock(&state.write_mu);
  std::string& out = state.written;
  {
    MutexLock lock(&state.mu);
    out.swap(state.pending);
  }
  if (!out.empty()) std::fwrite(out.data(), 1, out.size(), stderr);
  out.clear();
  // Kept up to twice the backlog that makes callers write themselves; a
  // larger one (a burst of long lines) is let go.
  if (out.capacity() > 2 * kMaxPendingBytes) out = std::string();
}

void WriterLoop(SinkState* state) {
  for (;;) {
    {
      MutexLock lock(&state->mu);
      while (state->pending.empty()) state->cv.Wait(&state->mu);
      state->cv.WaitUntil(&state->mu, absl::Now() + kGatherTime,
                          [state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
                            return state->pending.size() >= kGatherBytes;
                          });
    }
    WritePending(*state);
  }
}

// "2026-11-27T21:00:00" for the current second, formatted once per second
// per thread (absl::FormatTime per line was a tenth of an audit line's cost).
void AppendTimestamp(std::string* out) {
  thread_local int64_t cached_second = -1;
  thread_local std::string cached;
  const int64_t ms = absl::ToUnixMillis(absl::Now());
  const int64_t second = ms / 1000;
  if (second != cached_second) {
    cached = absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(second),
                              absl::UTCTimeZone());
    cached_second = second;
  }
  const int millis = static_cast<int>(ms % 1000);
  const char fraction[] = {'.', static_cast<char>('0' + millis / 100),
                           static_cast<char>('0' + millis / 10 % 10),
                           static_cast<char>('0' + millis % 10), 'Z'};
  out->append(cached);
  out->append(fraction, sizeof(fraction));
}

}  // namespace

void FlushLogs() { WritePending(State()); }

namespace internal {

// Hand-written rather than protobuf's JSON printer: this runs on every
// GetToken (the audit line), and building a google.protobuf.Struct per line
// costs more than the RPC's own work.
void AppendJsonString(absl::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Which bytes need an escape: control characters, '"', '\\' and DEL.
  static constexpr auto kEscaped = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 0x20; ++c) table[c] = true;
    table['"'] = table['\\'] = table[0x7f] = true;
    return table;
  }();
  out->push_back('"');
  // Runs of characters that need no escape are appended whole (this runs
  // for every field of every audit line).
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (!kEscaped[c]) continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default: {
        const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out->append(escaped, sizeof(escaped));
      }
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

void AppendJsonField(absl::string_view key, absl::string_view value,
                     std::string* out) {
  out->push_back(',');
  AppendJsonString(key, out);
  out->push_back(':');
  AppendJsonString(value, out);
}

}  // namespace internal

void Log(LogLevel level, absl::string_view message,
         absl::Span<const LogField> fields) {
  if (static_cast<int>(level) < min_level.load(std::memory_order_relaxed)) {
    return;
  }
  std::string json;
  for (const LogField& f : fields) {
    internal::AppendJsonField(f.key, f.value, &json);
  }
  LogJson(level, message, json);
}

void LogJson(LogLevel level, absl::string_view message,
             absl::string_view fields_json) {
  if (static_cast<int>(level) < min_level.load(std::memory_order_relaxed)) {
    return;
  }
  // The thread's own buffer, reused: no allocation per line (one that grew
  // past a few lines' size is let go).
  thread_local std::string line;
  internal::ResetReusedLogBuffer(&line);
  line.reserve(66 + message.size() + fields_json.size());  // no regrowth
  line.append("{\"time\":\"");
  AppendTimestamp(&line);
  line.append("\",\"level\":\"");
  line.append(LevelName(level));
  line.append("\",\"msg\":");
  internal::AppendJsonString(message, &line);
  line.append(fields_json.data(), fields_json.size());
  line.append("}\n");  // the newline is the sink's to drop

  SinkState& state = State();
  bool write_now = level >= LogLevel::kError;
  {
    MutexLock lock(&state.mu);
    if (state.sink) {
      state.sink(absl::string_view(line.data(), line.size() - 1));
      return;
    }
    const bool was_empty = state.pending.empty();
    state.pending.append(line);
    if (state.pending.size() > kMaxPendingBytes) write_now = true;
    if (!state.writer_started) {
      state.writer_started = true;
      std::thread(WriterLoop, &state).detach();
      std::atexit(FlushLogs);
    }
    // The writer waits for a first line, then for a batch.
    if (was_empty || state.pending.size() >= kGatherBytes) state.cv.Signal();
  }
  if (write_now) WritePending(state);
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
