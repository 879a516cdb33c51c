// LoadRecorder: where the session drivers of a run put what they measure, from many threads at
// once. It keeps the summary of the measured window (samples that started after the warm-up),
// the slices (every sample, by the time it completed), the active sessions, the per-session
// rows and the late sends, and hands them over as a LoadResult when the run ends.
//
// Thread-safe: one mutex guards everything; a driver takes it once per step, turn or event.
#ifndef KVTIER_CLIENT_LOAD_LOAD_RECORDER_H_
#define KVTIER_CLIENT_LOAD_LOAD_RECORDER_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/load/load_result.h"

namespace kvtier {

// What the live progress line shows.
struct LoadProgress {
  absl::Duration elapsed;
  int active_sessions = 0;
  int64_t decode_tokens = 0;  // all, warm-up included
  int64_t errors = 0;
  LatencyHistogram token;  // measured so far
};

class LoadRecorder {
 public:
  LoadRecorder(absl::Time start, absl::Duration warmup, absl::Duration slice);

  absl::Time start() const { return start_; }
  // Whether a sample that started at `at` counts in the summary (it started after warm-up).
  bool Measured(absl::Time at) const { return at >= start_ + warmup_; }

  // A step that started at `started`: its layers' round trips; a decode step (one token of a
  // reply) also counts as a token of latency `ended - started`.
  void RecordStep(absl::Time started, absl::Time ended, absl::Span<const absl::Duration> layers,
                  bool decode);
  // A turn's first decode token, done at `done`, of a turn meant to start at `intended` and
  // started at `started`.
  void RecordFirstToken(absl::Time intended, absl::Time started, absl::Time done);
  void RecordTurn(absl::Time intended, absl::Time started, absl::Time done, int prompt_tokens,
                  int cached_tokens);
  void RecordError(absl::Time at, const absl::Status& status);
  // A layer output checked against the reference.
  void RecordVerified(bool matched);
  // A timed send (an arrival, a turn after its think time) meant for `intended`, sent at `sent`.
  void RecordSend(absl::Time intended, absl::Time sent);
  void SessionStarted(absl::Time at);
  void SessionEnded(absl::Time at, SessionRow row, bool completed);

  LoadProgress Progress(absl::Time now) const;
  // Everything, for a run that ended at `end`; the recorder is left empty.
  LoadResult Finish(absl::Time end);

 private:
  LoadSlice& SliceAt(absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const absl::Time start_;
  const absl::Duration warmup_;
  const absl::Duration slice_;

  mutable absl::Mutex mutex_;
  LoadResult result_ ABSL_GUARDED_BY(mutex_);
  int active_sessions_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t all_decode_tokens_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t all_errors_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_LOAD_RECORDER_H_
