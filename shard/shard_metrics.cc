#include "shard/shard_metrics.h"

namespace kvtier {

ShardMetrics::ShardMetrics(prometheus::Registry& registry)
    : step_seconds_(prometheus::BuildHistogram()
                        .Name("kvtier_shard_step_seconds")
                        .Help("Per step, the shard's busy time on it: its layers' checks, K/V "
                              "writes and attention")
                        .Register(registry)
                        .Add({},
                             prometheus::Histogram::BucketBoundaries{
                                 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3,
                                 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1})),
      layers_(prometheus::BuildCounter()
                  .Name("kvtier_shard_layers_total")
                  .Help("Layer messages attended")
                  .Register(registry)
                  .Add({})),
      layers_handed_off_(prometheus::BuildCounter()
                             .Name("kvtier_shard_layers_handed_off_total")
                             .Help("Layer messages whose attention ran on the step executor "
                                   "(reading more K/V than --inline_kv_kib), not on the gRPC "
                                   "thread that received them")
                             .Register(registry)
                             .Add({})),
      kv_bytes_(prometheus::BuildCounter()
                    .Name("kvtier_shard_kv_bytes_written_total")
                    .Help("New K and V bytes written to the shard's pools")
                    .Register(registry)
                    .Add({})),
      streams_(prometheus::BuildGauge()
                   .Name("kvtier_shard_streams")
                   .Help("Step streams open")
                   .Register(registry)
                   .Add({})),
      stream_errors_(prometheus::BuildCounter()
                         .Name("kvtier_shard_stream_errors_total")
                         .Help("Step streams ended by an error, by status code: refused past "
                               "max_streams, or a step that failed")
                         .Register(registry)) {}

void ShardMetrics::RecordStep(const StepTally& step) {
  if (step.layers == 0) return;
  step_seconds_.Observe(absl::ToDoubleSeconds(step.busy));
  layers_.Increment(static_cast<double>(step.layers));
  layers_handed_off_.Increment(static_cast<double>(step.handed_off));
  kv_bytes_.Increment(static_cast<double>(step.kv_bytes));
}

void ShardMetrics::StreamFailed(absl::StatusCode code) {
  stream_errors_.Add({{"code", absl::StatusCodeToString(code)}}).Increment();
}

}  // namespace kvtier
