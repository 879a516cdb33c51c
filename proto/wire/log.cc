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

}  // namespace

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
  const std::string line = absl::StrCat(time, " ", state.program, ": ", message, "\n");
  if (state.sink) {
    state.sink(line);
  } else {
    WriteToStderr(line);
  }
}

}  // namespace kvtier
