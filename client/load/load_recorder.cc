#include "client/load/load_recorder.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"

namespace kvtier {

LoadRecorder::LoadRecorder(absl::Time start, absl::Duration warmup, absl::Duration slice)
    : start_(start), warmup_(warmup), slice_(slice) {}

LoadSlice& LoadRecorder::SliceAt(absl::Time at) {
  absl::Duration into_slice;
  const int64_t index = std::max<int64_t>(0, absl::IDivDuration(at - start_, slice_, &into_slice));
  std::vector<LoadSlice>& slices = result_.slices;
  while (static_cast<int64_t>(slices.size()) <= index) {
    LoadSlice& slice = slices.emplace_back();
    slice.start = slice_ * static_cast<int64_t>(slices.size() - 1);
    slice.warmup = slice.start < warmup_;
    slice.max_active_sessions = active_sessions_;
  }
  return slices[index];
}

void LoadRecorder::RecordStep(absl::Time started, absl::Time ended,
                              absl::Span<const absl::Duration> layers, bool decode) {
  absl::MutexLock lock(&mutex_);
  LoadSlice& slice = SliceAt(ended);
  if (decode) {
    ++all_decode_tokens_;
    ++slice.decode_tokens;
    slice.token.RecordDuration(ended - started);
  }
  if (!Measured(started)) return;
  for (absl::Duration layer : layers) result_.latencies.layer_round_trip.RecordDuration(layer);
  result_.counts.layer_round_trips += static_cast<int64_t>(layers.size());
  if (decode) {
    result_.latencies.token.RecordDuration(ended - started);
    ++result_.counts.decode_tokens;
  }
}

void LoadRecorder::RecordFirstToken(absl::Time intended, absl::Time started, absl::Time done) {
  absl::MutexLock lock(&mutex_);
  SliceAt(done).ttft.RecordDuration(done - intended);
  if (!Measured(intended)) return;
  result_.latencies.ttft.RecordDuration(done - intended);
  result_.latencies.ttft_service.RecordDuration(done - started);
}

void LoadRecorder::RecordTurn(absl::Time intended, absl::Time started, absl::Time done,
                              int prompt_tokens, int cached_tokens) {
  absl::MutexLock lock(&mutex_);
  LoadSlice& slice = SliceAt(done);
  ++slice.turns;
  slice.prompt_tokens += prompt_tokens;
  slice.cached_tokens += cached_tokens;
  if (!Measured(intended)) return;
  result_.latencies.turn.RecordDuration(done - intended);
  result_.latencies.turn_service.RecordDuration(done - started);
  result_.latencies.cached_tokens.Record(cached_tokens);
  ++result_.counts.turns;
  result_.counts.prompt_tokens += prompt_tokens;
  result_.counts.cached_tokens += cached_tokens;
}

void LoadRecorder::RecordError(absl::Time at, const absl::Status& status) {
  absl::MutexLock lock(&mutex_);
  ++SliceAt(at).errors;
  ++all_errors_;
  if (Measured(at)) ++result_.counts.errors[absl::StatusCodeToString(status.code())];
}

void LoadRecorder::RecordVerified(bool matched) {
  absl::MutexLock lock(&mutex_);
  ++result_.counts.verified_outputs;
  if (!matched) ++result_.counts.verify_mismatches;
}

void LoadRecorder::RecordSend(absl::Time intended, absl::Time sent) {
  absl::MutexLock lock(&mutex_);
  ++result_.cost.sends;
  if (sent - intended > kLateSend) ++result_.cost.late_sends;
}

void LoadRecorder::SessionStarted(absl::Time at) {
  absl::MutexLock lock(&mutex_);
  ++active_sessions_;
  LoadSlice& slice = SliceAt(at);
  slice.max_active_sessions = std::max(slice.max_active_sessions, active_sessions_);
  if (Measured(at)) ++result_.counts.sessions_started;
}

void LoadRecorder::SessionEnded(absl::Time at, SessionRow row, bool completed) {
  absl::MutexLock lock(&mutex_);
  --active_sessions_;
  SliceAt(at);
  if (completed && Measured(start_ + row.start)) ++result_.counts.sessions_completed;
  if (row.token.count() > 0 || row.ttft.count() > 0 || !row.error.empty()) {
    result_.sessions.push_back(std::move(row));
  }
}

LoadProgress LoadRecorder::Progress(absl::Time now) const {
  absl::MutexLock lock(&mutex_);
  LoadProgress progress;
  progress.elapsed = now - start_;
  progress.active_sessions = active_sessions_;
  progress.decode_tokens = all_decode_tokens_;
  progress.errors = all_errors_;
  progress.token = result_.latencies.token;
  return progress;
}

LoadResult LoadRecorder::Finish(absl::Time end) {
  absl::MutexLock lock(&mutex_);
  LoadResult result = std::move(result_);
  result_ = LoadResult();
  result.elapsed = end - start_;
  result.measured = std::max(absl::ZeroDuration(), result.elapsed - warmup_);
  std::sort(result.sessions.begin(), result.sessions.end(),
            [](const SessionRow& a, const SessionRow& b) { return a.index < b.index; });
  return result;
}

}  // namespace kvtier
