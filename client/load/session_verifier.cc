#include "client/load/session_verifier.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "cache/kv/reference_attention.h"

namespace kvtier {

SessionVerifier::SessionVerifier(const v1::ModelSpec& model, DType dtype)
    : model_(model),
      dtype_(dtype),
      kv_width_(model.num_kv_heads() * model.head_dim()),
      k_(model.num_layers()),
      v_(model.num_layers()) {}

void SessionVerifier::AppendCached(int count, absl::FunctionRef<uint64_t(int position)> kv_stream) {
  for (int layer = 0; layer < model_.num_layers(); ++layer) {
    for (int position = context_len_; position < context_len_ + count; ++position) {
      const size_t at = k_[layer].size();
      k_[layer].resize(at + kv_width_);
      v_[layer].resize(at + kv_width_);
      StepTensors::DrawKv(model_, dtype_, layer, position, kv_stream(position), &k_[layer][at],
                          &v_[layer][at]);
    }
  }
  context_len_ += count;
}

absl::Status SessionVerifier::CheckLayer(int layer, const StepTensors& step) {
  std::vector<float>& k = k_[layer];
  std::vector<float>& v = v_[layer];
  k.insert(k.end(), step.k().begin(), step.k().end());
  v.insert(v.end(), step.v().begin(), step.v().end());
  ReferenceAttentionShape shape;
  shape.context_len = context_len_ + step.rows();
  shape.num_queries = step.rows();
  shape.num_q_heads = model_.num_q_heads();
  shape.num_kv_heads = model_.num_kv_heads();
  shape.head_dim = model_.head_dim();
  const std::vector<double> want =
      ReferenceAttention(shape, std::vector<float>(step.q().begin(), step.q().end()), k, v);
  const std::vector<float> got = step.Output();
  const AttentionTolerance tolerance = AttentionToleranceFor(dtype_);
  const int q_width = model_.num_q_heads() * model_.head_dim();
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::abs(got[i] - want[i]) <= tolerance.Bound(want[i])) continue;
    return absl::DataLossError(absl::StrCat(
        "verify: layer ", layer, ", position ", context_len_ + static_cast<int>(i / q_width),
        ", element ", i % q_width, ": the tier returned ", got[i], ", the reference ", want[i],
        " (tolerance ", tolerance.Bound(want[i]), ")"));
  }
  return absl::OkStatus();
}

}  // namespace kvtier
