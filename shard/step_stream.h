// StepStream: one Step stream of the data plane (attention.proto), as a gRPC callback reactor.
// The stream carries a front-end's steps one after the other: a message with a plan begins a
// step (the model's hosted range is found, the batch built, every sequence's lease admitted),
// each layer message is checked, its new K/V written and this range's slice of the attention
// output sent back. The first error ends the stream with its status; other streams are
// unaffected.
//
// Reactions never block. OnReadDone takes a plan itself (lookups and one lease check per
// sequence, an HMAC only for a lease the shard has not verified yet). A layer whose attention
// reads at most `inline_kv_bytes` of K/V runs there too: handing it over would cost a thread
// wake-up, tens of microseconds on a VM, for about as much work. A larger one is posted to the
// StepExecutor, whose thread does it. Either way the layer's answer is written at the end and
// OnWriteDone starts the next read. The stream deletes itself
// when gRPC is done with it (OnDone), calling `on_done` first. Each step's busy time, layers
// and K/V bytes are summed as it runs and recorded in the shard's metrics when its last layer
// is done (or, for a step cut short, when the next plan, an error or the stream's end drops
// it).
//
// Thread-safe by construction: at most one of a read, a queued or running task, or a write is
// outstanding at a time, each started by the one before, so the step state is touched by one
// thread at a time, in order.
#ifndef KVTIER_SHARD_STEP_STREAM_H_
#define KVTIER_SHARD_STEP_STREAM_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/server_callback.h"
#include "kvtier/v1/attention.pb.h"
#include "shard/hosted_model.h"
#include "shard/shard_metrics.h"
#include "shard/shard_state.h"
#include "shard/step_batch.h"
#include "shard/step_executor.h"

namespace kvtier {

class StepStream final : public grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse> {
 public:
  // `state`, `executor` and `metrics` must outlive the stream.
  StepStream(const ShardState* state, StepExecutor* executor, ShardMetrics* metrics,
             int64_t inline_kv_bytes, absl::AnyInvocable<void()> on_done);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  // A step's state between its messages.
  struct CurrentStep {
    ShardState::Hosted hosted;
    v1::StepPlan plan;
    StepBatch batch;
    StepTally tally = {};
  };

  // The layer of the message in request_, timed and counted, then its answer (or the error).
  void AnswerLayer();
  absl::Status Begin(v1::StepPlan plan);
  // One layer of the current step: checks, writes the new K/V, attends into response_.
  absl::Status RunLayer(const v1::LayerTensors& layer);
  // Records the current step, if any, in the metrics and drops it.
  void EndStep();
  // Ends the stream with `status`.
  void Fail(const absl::Status& status);

  const ShardState* const state_;
  StepExecutor* const executor_;
  ShardMetrics* const metrics_;
  const int64_t inline_kv_bytes_;
  absl::AnyInvocable<void()> on_done_;
  v1::StepRequest request_;
  v1::StepResponse response_;
  std::optional<CurrentStep> step_;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_STEP_STREAM_H_
