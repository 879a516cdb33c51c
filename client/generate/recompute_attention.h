// RecomputeAttention: the LayerAttention that keeps nothing between passes. Every pass carries
// the whole sequence from position 0 and attends causally over exactly the k and v it is given,
// so generating N tokens costs O(N^2) token-forwards: the baseline a KV cache is measured
// against.
//
// CausalAttention, the dense attention loop, is here too: RecomputeAttention and LocalKvCache
// both call it, so the two backends do the same float operations in the same order and give
// bit-identical outputs from identical inputs.
//
// CausalAttention is a pure function and thread-safe; a RecomputeAttention object is not.
#ifndef KVTIER_CLIENT_GENERATE_RECOMPUTE_ATTENTION_H_
#define KVTIER_CLIENT_GENERATE_RECOMPUTE_ATTENTION_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/generate/layer_attention.h"

namespace kvtier {

// Causal attention of n queries, the last n positions of a context of `context_len` tokens:
// query i attends to positions [0, context_len - n + i]. q and out are [n][num_q_heads]
// [head_dim], k and v [context_len][num_kv_heads][head_dim] (at least that many floats; more
// are ignored), n = q.size() / shape.q_width(). Scores scaled by 1/sqrt(head_dim), a
// max-subtracted softmax, all in fp32. Arguments must be valid (asserted, not checked):
// 1 <= n <= context_len.
void CausalAttention(const AttentionShape& shape, int context_len, absl::Span<const float> q,
                     absl::Span<const float> k, absl::Span<const float> v, absl::Span<float> out);

class RecomputeAttention final : public LayerAttention {
 public:
  // INVALID_ARGUMENT naming the field for a bad shape (AttentionShape::Validate).
  static absl::StatusOr<std::unique_ptr<RecomputeAttention>> Create(const AttentionShape& shape);

  // FAILED_PRECONDITION unless start_pos is 0; INVALID_ARGUMENT for no tokens.
  absl::StatusOr<int> BeginStep(int start_pos, absl::Span<const int32_t> tokens) override;
  // INVALID_ARGUMENT for a bad layer or tensor size; FAILED_PRECONDITION outside a pass or
  // out of layer order.
  absl::Status Attend(int layer, absl::Span<const float> q, absl::Span<const float> k,
                      absl::Span<const float> v, absl::Span<float> out) override;
  // FAILED_PRECONDITION outside a pass or before every layer has attended.
  absl::Status EndStep() override;

  const AttentionShape& shape() const { return shape_; }

 private:
  explicit RecomputeAttention(const AttentionShape& shape) : shape_(shape), pass_(shape) {}

  const AttentionShape shape_;
  LayerPass pass_;  // its tokens are the whole sequence, from position 0
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_GENERATE_RECOMPUTE_ATTENTION_H_
