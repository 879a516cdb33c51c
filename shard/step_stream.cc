#include "shard/step_stream.h"

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache/kv/attention.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/status_convert.h"

namespace kvtier {
namespace {

std::string SequenceField(int index) { return absl::StrCat("plan.sequences[", index, "]."); }

}  // namespace

StepStream::StepStream(const ShardState* state, StepExecutor* executor, ShardMetrics* metrics,
                       int64_t inline_kv_bytes, absl::AnyInvocable<void()> on_done)
    : state_(state),
      executor_(executor),
      metrics_(metrics),
      inline_kv_bytes_(inline_kv_bytes),
      on_done_(std::move(on_done)) {
  StartRead(&request_);
}

void StepStream::OnReadDone(bool ok) {
  // Not ok: the client half-closed (or the call ended); the stream is done.
  if (!ok) return Finish(grpc::Status::OK);
  if (request_.has_plan()) {
    if (absl::Status status = Begin(std::move(*request_.mutable_plan())); !status.ok()) {
      return Fail(status);
    }
  } else if (!step_.has_value()) {
    return Fail(absl::InvalidArgumentError("plan: the first message of a step must carry a plan"));
  }
  if (!request_.has_layer()) return StartRead(&request_);
  if (step_->batch.attended_kv_bytes() <= inline_kv_bytes_) return AnswerLayer();
  step_->tally.handed_off += 1;
  executor_->Post([this] { AnswerLayer(); });
}

void StepStream::OnWriteDone(bool ok) {
  if (!ok) return Finish(ToGrpcStatus(absl::CancelledError("step: the client went away")));
  StartRead(&request_);
}

void StepStream::OnDone() {
  EndStep();
  std::move(on_done_)();
  delete this;
}

void StepStream::Fail(const absl::Status& status) {
  EndStep();
  metrics_->StreamFailed(status.code());
  Finish(ToGrpcStatus(status));
}

void StepStream::AnswerLayer() {
  const absl::Time start = absl::Now();
  if (absl::Status status = RunLayer(request_.layer()); !status.ok()) return Fail(status);
  StepTally& tally = step_->tally;
  tally.busy += absl::Now() - start;
  tally.layers += 1;
  tally.kv_bytes += request_.layer().k().size() + request_.layer().v().size();
  // The last layer completes a step: recorded now, before its answer is sent.
  if (request_.layer().layer() == step_->hosted.model->spec().num_layers() - 1) {
    metrics_->RecordStep(tally);
    tally = {};
  }
  response_.set_layer(request_.layer().layer());
  StartWrite(&response_);
}

void StepStream::EndStep() {
  if (step_.has_value()) metrics_->RecordStep(step_->tally);  // what ran of a step cut short
  step_.reset();
}

absl::Status StepStream::Begin(v1::StepPlan plan) {
  EndStep();
  absl::StatusOr<ShardState::Hosted> hosted = state_->Find("plan.model", plan.model());
  if (!hosted.ok()) return hosted.status();
  HostedModel& model = *hosted->model;
  absl::StatusOr<StepBatch> batch = StepBatch::Build(plan, model);
  if (!batch.ok()) return batch.status();
  const absl::Time now = absl::Now();
  for (int i = 0; i < plan.sequences_size(); ++i) {
    const v1::SequenceStep& sequence = plan.sequences(i);
    absl::Status status =
        model.AdmitLease(sequence.lease(), sequence.context_len() - sequence.num_new_tokens(),
                         hosted->lease_key, now);
    if (!status.ok()) return Prefixed(SequenceField(i), status);
  }
  step_.emplace(CurrentStep{
      .hosted = *std::move(hosted), .plan = std::move(plan), .batch = *std::move(batch)});
  return absl::OkStatus();
}

absl::Status StepStream::RunLayer(const v1::LayerTensors& layer) {
  HostedModel& model = *step_->hosted.model;
  const v1::StepPlan& plan = step_->plan;
  const StepBatch& batch = step_->batch;
  const int num_layers = model.spec().num_layers();
  if (layer.layer() < 0 || layer.layer() >= num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer.layer: expected 0..", num_layers - 1, ", got ", layer.layer()));
  }
  for (int i = 0; i < plan.sequences_size(); ++i) {
    absl::Status status = model.CheckLeaseCurrent(plan.sequences(i).lease());
    if (!status.ok()) return Prefixed(SequenceField(i), status);
  }
  const std::string context = absl::StrCat("layer ", layer.layer(), ": ");
  // q is out's shape; checked here, before any K/V is written, so a bad layer writes nothing.
  if (static_cast<int64_t>(layer.q().size()) != batch.out_bytes()) {
    const KvPoolShape& shape = model.pool().shape();
    return absl::InvalidArgumentError(
        absl::StrCat(context, "q: expected ", batch.out_bytes(), " bytes (", batch.slots().size(),
                     " tokens x ", batch.num_q_heads(), " heads x ", shape.head_dim, " x ",
                     DTypeName(shape.dtype), "), got ", layer.q().size()));
  }
  KvPool& pool = model.pool();
  if (absl::Status status = pool.WriteKv(layer.layer(), batch.slots(), layer.k(), layer.v());
      !status.ok()) {
    return Prefixed(context, status);
  }
  std::string& out = *response_.mutable_out();
  out.resize(batch.out_bytes());
  if (absl::Status status = pool.Attend(layer.layer(), batch.sequences(),
                                        AttentionParams{.num_q_heads = batch.num_q_heads(),
                                                        .scale = 0.0f,
                                                        .kv_split_tokens = 0,
                                                        .kv_heads_per_unit = 0},
                                        layer.q(), absl::MakeSpan(out));
      !status.ok()) {
    return Prefixed(context, status);
  }
  return absl::OkStatus();
}

}  // namespace kvtier
