// ShardMetrics: a shard's data-plane families.
//   kvtier_shard_step_seconds             histogram: per step, the shard's busy time on it (its
//                                         layers' checks, K/V writes and attention, summed)
//   kvtier_shard_layers_total             counter: layer messages attended
//   kvtier_shard_layers_handed_off_total  counter: those whose attention ran on the step
//                                         executor, not in the reaction (step_stream.h)
//   kvtier_shard_kv_bytes_written_total   counter: new K and V bytes written to the pools
//   kvtier_shard_streams                  gauge: Step streams open
//   kvtier_shard_stream_errors_total      counter, by code: Step streams ended by an error
//                                         (refused past max_streams, or a step that failed)
// A step's figures are summed by the stream (StepTally) and recorded once, when the step's last
// layer is done, so the hot path takes no lock per layer. Several shards in one process
// (kvtier-local) share one set of series; a multi-process tier's scrape target tells its shards
// apart.
//
// Thread-safe: prometheus-cpp's metrics are.
#ifndef KVTIER_SHARD_SHARD_METRICS_H_
#define KVTIER_SHARD_SHARD_METRICS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace kvtier {

// One step's figures, so far.
struct StepTally {
  absl::Duration busy;
  int64_t layers = 0;
  int64_t handed_off = 0;  // layers run on the step executor
  int64_t kv_bytes = 0;
};

class ShardMetrics {
 public:
  // Counts into `registry`, which must outlive this object.
  explicit ShardMetrics(prometheus::Registry& registry);

  // A step that ended (a step with no layer is not counted).
  void RecordStep(const StepTally& step);

  void StreamOpened() { streams_.Increment(); }
  void StreamClosed() { streams_.Decrement(); }
  // A stream that ends with `code` (not OK).
  void StreamFailed(absl::StatusCode code);

 private:
  prometheus::Histogram& step_seconds_;
  prometheus::Counter& layers_;
  prometheus::Counter& layers_handed_off_;
  prometheus::Counter& kv_bytes_;
  prometheus::Gauge& streams_;
  prometheus::Family<prometheus::Counter>& stream_errors_;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_SHARD_METRICS_H_
