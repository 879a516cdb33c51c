#include "shard/attention_service.h"

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

grpc::Status AttentionServiceImpl::Step(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) {
  return ToGrpcStatus(RunStep(*stream));
}

absl::Status AttentionServiceImpl::RunStep(
    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>& stream) const {
  v1::StepRequest request;
  if (!stream.Read(&request) || !request.has_plan()) {
    return absl::InvalidArgumentError("plan: the first message of a step must carry a plan");
  }
  const v1::StepPlan plan = std::move(*request.mutable_plan());
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

  v1::StepResponse response;
  while (true) {
    if (request.has_layer()) {
      absl::Status status = RunLayer(model, plan, *batch, request.layer(), *response.mutable_out());
      if (!status.ok()) return status;
      response.set_layer(request.layer().layer());
      if (!stream.Write(response)) return absl::CancelledError("step: the client went away");
    }
    if (!stream.Read(&request)) return absl::OkStatus();
    if (request.has_plan()) {
      return absl::InvalidArgumentError("plan: only the first message of a step may carry one");
    }
  }
}

absl::Status AttentionServiceImpl::RunLayer(HostedModel& model, const v1::StepPlan& plan,
                                            const StepBatch& batch, const v1::LayerTensors& layer,
                                            std::string& out) {
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
  out.resize(batch.out_bytes());
  if (absl::Status status = pool.Attend(layer.layer(), batch.sequences(),
                                        AttentionParams{.num_q_heads = batch.num_q_heads()},
                                        layer.q(), absl::MakeSpan(out));
      !status.ok()) {
    return Prefixed(context, status);
  }
  return absl::OkStatus();
}

}  // namespace kvtier
