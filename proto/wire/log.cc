#include "proto/wire/log.h"

#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace kvtier {
namespace {

struct LogState {
  absl::Mutex mu;
  std::string program ABSL_GUARDED_BY(mu) = "kvtier";
  LogFormat format ABSL_GUARDED_BY(mu) = LogFormat::kText;
  LogSink sink ABSL_GUARDED_BY(mu);
};

LogState& State() {
  static LogState* const state = new LogState;
  return *state;
}

void WriteToStderr(absl::string_view line) {
  while (!line.empty()) {
    const ssize_t written = write(STDERR_FILENO, line.data(), line.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;  // nowhere left to report it
    line.remove_prefix(static_cast<size_t>(written));
  }
}

// `text` as a JSON string, quotes included.
std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace

void SetLogFormat(LogFormat format) {
  LogState& state = State();
  absl::MutexLock lock(&state.mu);
  state.format = format;
}

void SetLogProgramName(absl::string_view argv0) {
  const size_t slash = argv0.rfind('/');
  LogState& state = State();
  absl::MutexLock lock(&state.mu);
  state.program = std::string(slash == absl::string_view::npos ? argv0 : argv0.substr(slash + 1));
}

LogSink SetLogSink(LogSink sink) {
  LogState& state = State();
  absl::MutexLock lock(&state.mu);
  return std::exchange(state.sink, std::move(sink));
}

void Log(absl::string_view message) {
  const std::string time =
      absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone());
  LogState& state = State();
  absl::MutexLock lock(&state.mu);
  const std::string line =
      state.format == LogFormat::kJson
          ? absl::StrCat("{\"time\":\"", time, "\",\"program\":", JsonString(state.program),
                         ",\"message\":", JsonString(message), "}\n")
          : absl::StrCat(time, " ", state.program, ": ", message, "\n");
  if (state.sink) {
    state.sink(line);
  } else {
    WriteToStderr(line);
  }
}

}  // namespace kvtier
