#include "client/load/progress_line.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_format.h"

namespace kvtier {

ProgressLine::ProgressLine(FILE* out) : out_(out), terminal_(isatty(fileno(out)) == 1) {}

void ProgressLine::Update(const LoadProgress& progress) {
  const double seconds = absl::ToDoubleSeconds(progress.elapsed - last_elapsed_);
  const double tokens_per_second =
      seconds > 0 ? (progress.decode_tokens - last_tokens_) / seconds : 0;
  last_elapsed_ = progress.elapsed;
  last_tokens_ = progress.decode_tokens;
  const std::string line = absl::StrFormat(
      "kvtier-load: %6.1fs  active %4d  %9.1f tokens/s  token p50 %7.3f ms  p99 %7.3f ms  "
      "errors %lld",
      absl::ToDoubleSeconds(progress.elapsed), progress.active_sessions, tokens_per_second,
      progress.token.Percentile(0.5) / 1e6, progress.token.Percentile(0.99) / 1e6,
      static_cast<long long>(progress.errors));
  std::fprintf(out_, terminal_ ? "\r%s\x1b[K" : "%s\n", line.c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressLine::Done() {
  if (terminal_ && drawn_) std::fputc('\n', out_);
  drawn_ = false;
}

}  // namespace kvtier
