#include "client/step.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/client_internal.h"
#include "client/session.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/sync_stream.h"
#include "proto/wire/layer_shapes.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/status_convert.h"

namespace kvtier {
namespace {

// Copies heads [head_begin, head_end) of every row of `full` ([rows][heads][row_bytes / heads])
// into `slice`, row by row: a shard's share of a layer's tensor.
void GatherHeads(absl::Span<const char> full, int64_t rows, int64_t head_bytes, int heads,
                 int head_begin, int head_end, std::string* slice) {
  const int64_t take = (head_end - head_begin) * head_bytes;
  slice->resize(rows * take);
  for (int64_t row = 0; row < rows; ++row) {
    std::memcpy(slice->data() + row * take, full.data() + (row * heads + head_begin) * head_bytes,
                take);
  }
}

// The inverse of GatherHeads: writes a shard's rows into its heads of `full`.
void ScatterHeads(const std::string& slice, int64_t rows, int64_t head_bytes, int heads,
                  int head_begin, int head_end, absl::Span<char> full) {
  const int64_t take = (head_end - head_begin) * head_bytes;
  for (int64_t row = 0; row < rows; ++row) {
    std::memcpy(full.data() + (row * heads + head_begin) * head_bytes, slice.data() + row * take,
                take);
  }
}

}  // namespace

struct Step::ShardStream {
  v1::ShardEndpoint endpoint;
  std::shared_ptr<v1::AttentionService::Stub> stub;  // keeps the channel alive for the stream
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepResponse>> stream;
};

Step::Step(Client* client, std::vector<Session*> sessions)
    : client_(client), sessions_(std::move(sessions)), model_(sessions_[0]->model()) {
  *plan_.mutable_model() = model_.id();
  for (Session* session : sessions_) {
    v1::SequenceStep* sequence = plan_.add_sequences();
    *sequence->mutable_lease() = session->lease();
    sequence->set_context_len(session->context_len() + session->pending_tokens());
    sequence->set_num_new_tokens(session->pending_tokens());
    num_tokens_ += session->pending_tokens();
  }
}

Step::~Step() {
  if (!finished_) {
    for (Session* session : sessions_) session->DropPending();
  }
  for (auto& shard : shards_) {
    if (shard->stream == nullptr) continue;
    shard->context.TryCancel();
    static_cast<void>(shard->stream->Finish());  // CANCELLED: it says nothing new
  }
}

absl::Status Step::Open() {
  const auto deadline = absl::ToChronoTime(absl::Now() + client_->options().step_deadline);
  for (const v1::ShardEndpoint& endpoint : sessions_[0]->info().shards()) {
    if (endpoint.address().empty()) {
      return sessions_[0]->Explain(
          absl::UnavailableError(absl::StrCat("model ", ModelIdString(model_.id()), ": head range ",
                                              endpoint.slot(), " has no shard")));
    }
    auto shard = std::make_unique<ShardStream>();
    shard->endpoint = endpoint;
    shard->context.set_deadline(deadline);
    shard->stub = client_->connection().Shard(endpoint.address());
    shard->stream = shard->stub->Step(&shard->context);
    shards_.push_back(std::move(shard));
  }
  return absl::OkStatus();
}

absl::Status Step::CheckSizes(int layer, absl::Span<const char> q, absl::Span<const char> k,
                              absl::Span<const char> v, absl::Span<char> out) const {
  if (layer < 0 || layer >= model_.num_layers()) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: expected 0..", model_.num_layers() - 1, ", got ", layer));
  }
  const int64_t row_bytes = int64_t{model_.head_dim()} * DTypeBytes(model_.dtype());
  const struct {
    const char* name;
    size_t actual;
    int heads;
  } tensors[] = {{"q", q.size(), model_.num_q_heads()},
                 {"k", k.size(), model_.num_kv_heads()},
                 {"v", v.size(), model_.num_kv_heads()},
                 {"out", out.size(), model_.num_q_heads()}};
  for (const auto& tensor : tensors) {
    const int64_t expected = num_tokens_ * tensor.heads * row_bytes;
    if (static_cast<int64_t>(tensor.actual) != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat(tensor.name, ": expected ", expected, " bytes (", num_tokens_, " tokens x ",
                       tensor.heads, " heads x ", model_.head_dim(), "), got ", tensor.actual));
    }
  }
  return absl::OkStatus();
}

absl::Status Step::Attend(int layer, absl::Span<const char> q, absl::Span<const char> k,
                          absl::Span<const char> v, absl::Span<char> out) {
  if (!failure_.ok()) return failure_;
  if (finished_) return absl::FailedPreconditionError("Attend: the step is finished");
  if (absl::Status status = CheckSizes(layer, q, k, v, out); !status.ok()) return status;

  const int group = GqaGroupSize(model_);
  const int64_t head_bytes = out.size() / (num_tokens_ * model_.num_q_heads());
  // Send every shard its slice before waiting for any: the shards compute side by side.
  for (auto& shard : shards_) {
    const v1::HeadRange& heads = shard->endpoint.heads();
    v1::StepRequest request;
    if (!plan_sent_) {
      v1::StepPlan* plan = request.mutable_plan();
      *plan = plan_;
      plan->set_slot(shard->endpoint.slot());
      *plan->mutable_shapes() =
          LayerShapesFor(model_, shard->endpoint.heads(), static_cast<int>(num_tokens_));
    }
    v1::LayerTensors* tensors = request.mutable_layer();
    tensors->set_layer(layer);
    GatherHeads(q, num_tokens_, head_bytes, model_.num_q_heads(), heads.kv_head_begin() * group,
                heads.kv_head_end() * group, tensors->mutable_q());
    GatherHeads(k, num_tokens_, head_bytes, model_.num_kv_heads(), heads.kv_head_begin(),
                heads.kv_head_end(), tensors->mutable_k());
    GatherHeads(v, num_tokens_, head_bytes, model_.num_kv_heads(), heads.kv_head_begin(),
                heads.kv_head_end(), tensors->mutable_v());
    if (!shard->stream->Write(request)) return Fail(ShardFailure(*shard));
  }
  plan_sent_ = true;

  for (auto& shard : shards_) {
    const v1::HeadRange& heads = shard->endpoint.heads();
    v1::StepResponse response;
    if (!shard->stream->Read(&response)) return Fail(ShardFailure(*shard));
    const int64_t expected = num_tokens_ * NumHeads(heads) * group * head_bytes;
    if (response.layer() != layer || static_cast<int64_t>(response.out().size()) != expected) {
      return Fail(absl::InternalError(absl::StrCat(
          "shard ", shard->endpoint.address(), " answered layer ", response.layer(), " with ",
          response.out().size(), " bytes; expected layer ", layer, ", ", expected, " bytes")));
    }
    ScatterHeads(response.out(), num_tokens_, head_bytes, model_.num_q_heads(),
                 heads.kv_head_begin() * group, heads.kv_head_end() * group, out);
  }
  return absl::OkStatus();
}

absl::Status Step::ShardFailure(ShardStream& shard) {
  const grpc::Status status = shard.stream->Finish();
  shard.stream.reset();
  absl::Status failure = FromGrpcStatus(
      status, absl::StrCat("shard ", shard.endpoint.slot(), " (", shard.endpoint.address(), ")"));
  if (IsReprefillRequired(failure)) return failure;
  if (absl::IsUnavailable(failure)) client_->connection().ForgetShard(shard.endpoint.address());
  // The shard may be gone; if the coordinator dropped the session with it, say so.
  for (Session* session : sessions_) {
    absl::Status explained = session->Explain(failure);
    if (IsReprefillRequired(explained)) return explained;
  }
  return failure;
}

absl::Status Step::Fail(absl::Status failure) {
  failure_ = std::move(failure);
  for (Session* session : sessions_) session->DropPending();
  return failure_;
}

absl::Status Step::Finish() {
  if (!failure_.ok()) return failure_;
  if (finished_) return absl::OkStatus();
  finished_ = true;
  absl::Status result;
  for (auto& shard : shards_) {
    shard->stream->WritesDone();
    const grpc::Status status = shard->stream->Finish();
    shard->stream.reset();
    if (!status.ok() && result.ok()) {
      result = FromGrpcStatus(status, absl::StrCat("shard ", shard->endpoint.slot(), " (",
                                                   shard->endpoint.address(), ")"));
    }
  }
  if (!result.ok()) return Fail(result);
  for (Session* session : sessions_) session->StepWritten();
  return absl::OkStatus();
}

}  // namespace kvtier
