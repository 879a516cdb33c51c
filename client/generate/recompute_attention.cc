#include "client/generate/recompute_attention.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

// NOTE: a dot product written as one running sum is a serial chain of adds the compiler may
// not reorder. kLanes independent partial sums, reduced in a fixed order, vectorize without
// -ffast-math and still round the same way on every call.
constexpr int kLanes = 16;

float Dot(const float* __restrict a, const float* __restrict b, int n) {
  float partial[kLanes] = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) partial[l] += a[j + l] * b[j + l];
  }
  for (int l = 0; j + l < n; ++l) partial[l] += a[j + l] * b[j + l];
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += partial[l];
  return sum;
}

}  // namespace

void CausalAttention(const AttentionShape& shape, int context_len, absl::Span<const float> q,
                     absl::Span<const float> k, absl::Span<const float> v, absl::Span<float> out) {
  const int d = shape.head_dim;
  const int64_t q_width = shape.q_width();
  const int64_t kv_width = shape.kv_width();
  const int num_queries = static_cast<int>(q.size() / q_width);
  const int group = shape.num_q_heads / shape.num_kv_heads;
  assert(num_queries >= 1 && num_queries <= context_len);
  assert(static_cast<int64_t>(q.size()) == num_queries * q_width);
  assert(out.size() == q.size());
  assert(static_cast<int64_t>(k.size()) >= context_len * kv_width);
  assert(static_cast<int64_t>(v.size()) >= context_len * kv_width);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));

  std::vector<float> scores(context_len);
  for (int i = 0; i < num_queries; ++i) {
    const int visible = context_len - num_queries + i + 1;
    for (int h = 0; h < shape.num_q_heads; ++h) {
      const int64_t kv_offset = int64_t{h / group} * d;
      const float* query = q.data() + i * q_width + int64_t{h} * d;
      float max_score = -INFINITY;
      for (int t = 0; t < visible; ++t) {
        scores[t] = Dot(query, k.data() + t * kv_width + kv_offset, d) * scale;
        max_score = std::max(max_score, scores[t]);
      }
      float sum = 0.0f;
      for (int t = 0; t < visible; ++t) {
        scores[t] = std::exp(scores[t] - max_score);
        sum += scores[t];
      }
      float* __restrict result = out.data() + i * q_width + int64_t{h} * d;
      for (int j = 0; j < d; ++j) result[j] = 0.0f;
      for (int t = 0; t < visible; ++t) {
        const float weight = scores[t];
        const float* __restrict value = v.data() + t * kv_width + kv_offset;
        for (int j = 0; j < d; ++j) result[j] += weight * value[j];
      }
      const float inv_sum = 1.0f / sum;
      for (int j = 0; j < d; ++j) result[j] *= inv_sum;
    }
  }
}

absl::StatusOr<std::unique_ptr<RecomputeAttention>> RecomputeAttention::Create(
    const AttentionShape& shape) {
  if (absl::Status s = shape.Validate(); !s.ok()) return s;
  return std::unique_ptr<RecomputeAttention>(new RecomputeAttention(shape));
}

absl::StatusOr<int> RecomputeAttention::BeginStep(int start_pos, absl::Span<const int32_t> tokens) {
  pass_.Abandon();
  if (start_pos != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "start_pos: a recompute pass carries the whole sequence from position 0, got ", start_pos));
  }
  if (tokens.empty()) return absl::InvalidArgumentError("tokens: empty");
  pass_.Begin(static_cast<int>(tokens.size()));
  return 0;
}

absl::Status RecomputeAttention::Attend(int layer, absl::Span<const float> q,
                                        absl::Span<const float> k, absl::Span<const float> v,
                                        absl::Span<float> out) {
  if (absl::Status s = pass_.CheckAttend(layer, q.size(), k.size(), v.size(), out.size());
      !s.ok()) {
    return s;
  }
  CausalAttention(shape_, pass_.num_tokens(), q, k, v, out);
  pass_.Attended();
  return absl::OkStatus();
}

absl::Status RecomputeAttention::EndStep() { return pass_.End(); }

}  // namespace kvtier
