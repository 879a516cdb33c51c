#include "client/generate/tier_attention.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"

namespace kvtier {
namespace {

absl::Span<const char> Bytes(absl::Span<const float> values) {
  return {reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)};
}

}  // namespace

absl::StatusOr<std::unique_ptr<TierAttention>> TierAttention::Create(
    const AttentionShape& shape, std::unique_ptr<Session> session) {
  const v1::ModelSpec& model = session->model();
  const struct {
    const char* field;
    int tier;
    int wanted;
  } fields[] = {{"num_layers", model.num_layers(), shape.num_layers},
                {"num_q_heads", model.num_q_heads(), shape.num_q_heads},
                {"num_kv_heads", model.num_kv_heads(), shape.num_kv_heads},
                {"head_dim", model.head_dim(), shape.head_dim}};
  for (const auto& field : fields) {
    if (field.tier != field.wanted) {
      return absl::InvalidArgumentError(absl::StrCat("model ", model.id().name(), ": ", field.field,
                                                     " is ", field.tier,
                                                     " in the tier, the "
                                                     "generating model has ",
                                                     field.wanted));
    }
  }
  if (model.dtype() != v1::DTYPE_FP32) {
    return absl::InvalidArgumentError(absl::StrCat("model ", model.id().name(), ": dtype is ",
                                                   v1::Dtype_Name(model.dtype()),
                                                   ", the generating model passes fp32 K/V"));
  }
  return absl::WrapUnique(new TierAttention(shape, std::move(session)));
}

absl::StatusOr<int> TierAttention::BeginStep(int start_pos, absl::Span<const int32_t> tokens) {
  pass_.Abandon();
  step_.reset();
  if (start_pos != session_->context_len()) {
    return absl::FailedPreconditionError(absl::StrCat("start_pos: the session holds ",
                                                      session_->context_len(),
                                                      " tokens, the pass starts at ", start_pos));
  }
  absl::StatusOr<int32_t> cached = session_->Extend(tokens);
  if (!cached.ok()) return cached.status();
  absl::StatusOr<std::unique_ptr<Step>> step = session_->BeginStep();
  if (!step.ok()) return step.status();
  step_ = *std::move(step);
  pass_.Begin(static_cast<int>(tokens.size()) - *cached);
  return *cached;
}

absl::Status TierAttention::Attend(int layer, absl::Span<const float> q, absl::Span<const float> k,
                                   absl::Span<const float> v, absl::Span<float> out) {
  if (absl::Status status = pass_.CheckAttend(layer, q.size(), k.size(), v.size(), out.size());
      !status.ok()) {
    return status;
  }
  absl::Status status =
      step_->Attend(layer, Bytes(q), Bytes(k), Bytes(v),
                    {reinterpret_cast<char*>(out.data()), out.size() * sizeof(float)});
  if (status.ok()) pass_.Attended();
  return status;
}

absl::Status TierAttention::EndStep() {
  if (absl::Status status = pass_.End(); !status.ok()) return status;
  absl::Status status = step_->Finish();
  step_.reset();
  return status;
}

}  // namespace kvtier
