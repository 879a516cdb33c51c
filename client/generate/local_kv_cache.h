// LocalKvCache: an in-process KV cache for one generation, the LayerAttention of the "local
// cache" mode. K and V are each stored [num_layers][max_tokens][num_kv_heads][head_dim] fp32,
// allocated once at creation and never grown; a pass appends its tokens' K/V (a copy per layer,
// O(1) per token) and attends over everything cached with CausalAttention, the same loop
// RecomputeAttention runs, so both give bit-identical outputs.
//
// A pass's tokens are committed at EndStep; a pass abandoned before it leaves the cache as it
// was. Reset() empties the cache without freeing it.
//
// Thread-safety: not thread-safe; one generation at a time.
#ifndef KVTIER_CLIENT_GENERATE_LOCAL_KV_CACHE_H_
#define KVTIER_CLIENT_GENERATE_LOCAL_KV_CACHE_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/generate/layer_attention.h"

namespace kvtier {

class LocalKvCache final : public LayerAttention {
 public:
  // INVALID_ARGUMENT naming the field for a bad shape or max_tokens <= 0, or when the storage
  // size overflows; RESOURCE_EXHAUSTED when the allocation fails.
  static absl::StatusOr<std::unique_ptr<LocalKvCache>> Create(const AttentionShape& shape,
                                                              int max_tokens);

  // Reserves positions [start_pos, start_pos + n). FAILED_PRECONDITION unless start_pos is
  // num_tokens(); RESOURCE_EXHAUSTED naming the capacity when the tokens do not fit;
  // INVALID_ARGUMENT for no tokens.
  absl::StatusOr<int> BeginStep(int start_pos, absl::Span<const int32_t> tokens) override;
  // Stores this layer's new k, v and attends over the cached context plus them.
  // INVALID_ARGUMENT for a bad layer or tensor size; FAILED_PRECONDITION outside a pass or out
  // of layer order.
  absl::Status Attend(int layer, absl::Span<const float> q, absl::Span<const float> k,
                      absl::Span<const float> v, absl::Span<float> out) override;
  // Commits the pass. FAILED_PRECONDITION outside a pass or before every layer has attended.
  absl::Status EndStep() override;

  // Empties the cache (and abandons any pass) without freeing the storage.
  void Reset();

  const AttentionShape& shape() const { return shape_; }
  int max_tokens() const { return max_tokens_; }
  int num_tokens() const { return num_tokens_; }  // committed
  // Bytes allocated for K and V: 2 * num_layers * max_tokens * num_kv_heads * head_dim * 4.
  int64_t memory_bytes() const { return 2 * int64_t{shape_.num_layers} * layer_floats() * 4; }
  // Bytes holding committed tokens: memory_bytes() * num_tokens() / max_tokens().
  int64_t used_bytes() const {
    return 2 * int64_t{shape_.num_layers} * num_tokens_ * shape_.kv_width() * 4;
  }

 private:
  LocalKvCache(const AttentionShape& shape, int max_tokens, std::unique_ptr<float[]> storage);

  int64_t layer_floats() const { return int64_t{max_tokens_} * shape_.kv_width(); }
  float* k_layer(int layer) { return storage_.get() + layer * layer_floats(); }
  float* v_layer(int layer) {
    return storage_.get() + (shape_.num_layers + int64_t{layer}) * layer_floats();
  }

  const AttentionShape shape_;
  const int max_tokens_;
  // All K layers, then all V layers.
  const std::unique_ptr<float[]> storage_;
  int num_tokens_ = 0;  // committed
  LayerPass pass_;      // its new tokens go at [num_tokens_, num_tokens_ + pass_.num_tokens())
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_GENERATE_LOCAL_KV_CACHE_H_
