#include "client/step.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/client_internal.h"
#include "client/session.h"
#include "client/shard_streams.h"
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
  head_bytes_ = int64_t{model_.head_dim()} * DTypeBytes(model_.dtype());
}

Step::~Step() {
  if (!finished_) {
    for (Session* session : sessions_) session->DropPending();
  }
  ReleaseStreams();
}

absl::Status Step::Open() {
  deadline_ = absl::Now() + client_->options().step_deadline;
  for (const v1::ShardEndpoint& endpoint : sessions_[0]->info().shards()) {
    if (endpoint.address().empty()) {
      return sessions_[0]->Explain(
          absl::UnavailableError(absl::StrCat("model ", ModelIdString(model_.id()), ": head range ",
                                              endpoint.slot(), " has no shard")));
    }
    ShardExchange& exchange = exchanges_.emplace_back();
    exchange.address = endpoint.address();
  }
  streams_ = client_->connection().TakeStreams();
  return absl::OkStatus();
}

void Step::ReleaseStreams() {
  if (streams_ != nullptr) client_->connection().ReturnStreams(std::move(streams_));
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
  const auto& shards = sessions_[0]->info().shards();
  for (int i = 0; i < shards.size(); ++i) {
    const v1::HeadRange& heads = shards[i].heads();
    v1::StepRequest& request = exchanges_[i].request;
    if (!plan_sent_) {
      v1::StepPlan* plan = request.mutable_plan();
      *plan = plan_;
      plan->set_slot(shards[i].slot());
      *plan->mutable_shapes() = LayerShapesFor(model_, heads, static_cast<int>(num_tokens_));
    } else if (request.has_plan()) {
      request.clear_plan();
    }
    v1::LayerTensors* tensors = request.mutable_layer();
    tensors->set_layer(layer);
    GatherHeads(q, num_tokens_, head_bytes_, model_.num_q_heads(), heads.kv_head_begin() * group,
                heads.kv_head_end() * group, tensors->mutable_q());
    GatherHeads(k, num_tokens_, head_bytes_, model_.num_kv_heads(), heads.kv_head_begin(),
                heads.kv_head_end(), tensors->mutable_k());
    GatherHeads(v, num_tokens_, head_bytes_, model_.num_kv_heads(), heads.kv_head_begin(),
                heads.kv_head_end(), tensors->mutable_v());
  }
  // Every shard's message is in flight at once; each answer is assembled as it arrives.
  absl::Status assembled;
  streams_->RoundTrip(absl::MakeSpan(exchanges_), /*step_begins=*/!plan_sent_, deadline_,
                      [&](int index) {
                        absl::Status status = Assemble(index, layer, out);
                        if (assembled.ok()) assembled = std::move(status);
                      });
  plan_sent_ = true;
  for (int i = 0; i < shards.size(); ++i) {
    if (!exchanges_[i].answered) return Fail(ShardFailure(i));
  }
  if (!assembled.ok()) return Fail(assembled);
  return absl::OkStatus();
}

absl::Status Step::Assemble(int index, int layer, absl::Span<char> out) const {
  const v1::ShardEndpoint& shard = sessions_[0]->info().shards(index);
  const v1::HeadRange& heads = shard.heads();
  const int group = GqaGroupSize(model_);
  const v1::StepResponse& response = exchanges_[index].response;
  const int64_t expected = num_tokens_ * NumHeads(heads) * group * head_bytes_;
  if (response.layer() != layer || static_cast<int64_t>(response.out().size()) != expected) {
    return absl::InternalError(absl::StrCat("shard ", shard.address(), " answered layer ",
                                            response.layer(), " with ", response.out().size(),
                                            " bytes; expected layer ", layer, ", ", expected,
                                            " bytes"));
  }
  ScatterHeads(response.out(), num_tokens_, head_bytes_, model_.num_q_heads(),
               heads.kv_head_begin() * group, heads.kv_head_end() * group, out);
  return absl::OkStatus();
}

absl::Status Step::ShardFailure(int index) {
  const v1::ShardEndpoint& shard = sessions_[0]->info().shards(index);
  absl::Status failure = FromGrpcStatus(exchanges_[index].status,
                                        absl::StrCat("shard ", shard.slot(), " (", shard.address(), ")"));
  if (IsReprefillRequired(failure)) return failure;
  if (absl::IsUnavailable(failure)) client_->connection().ForgetShard(shard.address());
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
  ReleaseStreams();
  return failure_;
}

absl::Status Step::Finish() {
  if (!failure_.ok()) return failure_;
  if (finished_) return absl::OkStatus();
  if (!plan_sent_) return Fail(absl::FailedPreconditionError("Finish: the step attended no layer"));
  finished_ = true;
  ReleaseStreams();
  for (Session* session : sessions_) session->StepWritten();
  return absl::OkStatus();
}

}  // namespace kvtier
