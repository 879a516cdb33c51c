// ProgressLine: the live progress of a run on stderr: elapsed time, active sessions, decode
// tokens/s since the last update, token latency p50/p99 so far and errors. On a terminal one
// line is redrawn in place; otherwise (a pipe, a log file) each update is a line of its own.
//
// Not thread-safe: the runner's progress thread alone prints.
#ifndef KVTIER_CLIENT_LOAD_PROGRESS_LINE_H_
#define KVTIER_CLIENT_LOAD_PROGRESS_LINE_H_

#include <cstdint>
#include <cstdio>

#include "absl/time/time.h"
#include "client/load/load_recorder.h"

namespace kvtier {

class ProgressLine {
 public:
  explicit ProgressLine(FILE* out);

  void Update(const LoadProgress& progress);
  // Ends the line on a terminal, so what follows starts on its own.
  void Done();

 private:
  FILE* const out_;
  const bool terminal_;
  absl::Duration last_elapsed_;
  int64_t last_tokens_ = 0;
  bool drawn_ = false;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_PROGRESS_LINE_H_
