#include "cache/kv/reference_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvtier {

std::vector<double> ReferenceAttention(const ReferenceAttentionShape& shape,
                                       const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v) {
  const int d = shape.head_dim;
  const int group = shape.num_q_heads / shape.num_kv_heads;
  const double scale = shape.scale != 0.0 ? shape.scale : 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> out(static_cast<size_t>(shape.num_queries) * shape.num_q_heads * d, 0.0);
  std::vector<double> scores(shape.context_len);
  for (int i = 0; i < shape.num_queries; ++i) {
    const int visible = shape.context_len - shape.num_queries + i + 1;
    for (int h = 0; h < shape.num_q_heads; ++h) {
      const int kv_head = h / group;
      const float* query = &q[(static_cast<size_t>(i) * shape.num_q_heads + h) * d];
      double max_score = -std::numeric_limits<double>::infinity();
      for (int t = 0; t < visible; ++t) {
        const float* key = &k[(static_cast<size_t>(t) * shape.num_kv_heads + kv_head) * d];
        double dot = 0.0;
        for (int j = 0; j < d; ++j) dot += static_cast<double>(query[j]) * key[j];
        scores[t] = dot * scale;
        max_score = std::max(max_score, scores[t]);
      }
      double sum = 0.0;
      for (int t = 0; t < visible; ++t) {
        scores[t] = std::exp(scores[t] - max_score);
        sum += scores[t];
      }
      double* result = &out[(static_cast<size_t>(i) * shape.num_q_heads + h) * d];
      for (int t = 0; t < visible; ++t) {
        const float* value = &v[(static_cast<size_t>(t) * shape.num_kv_heads + kv_head) * d];
        for (int j = 0; j < d; ++j) result[j] += scores[t] / sum * value[j];
      }
    }
  }
  return out;
}

AttentionTolerance AttentionToleranceFor(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return {2e-6, 1e-4};
    case DType::kF16:
      return {2e-6, 1e-3};
    case DType::kBF16:
      return {2e-6, 4e-3};
  }
  return {0, 0};
}

}  // namespace kvtier
