// ToyTransformer: a small decoder-only transformer with seeded random weights, for generating
// tokens through the different LayerAttention backends and checking that they agree.
//
// Architecture (Llama-like, no biases): token embedding; num_layers pre-norm blocks, each
//   h = RMSNorm(x);  q, k, v = h·Wq, h·Wk, h·Wv;  RoPE on q and k at absolute positions;
//   x += Attend(q, k, v)·Wo;  x += SiLU(RMSNorm(x)·Wup)·Wdown;
// then a final RMSNorm and a separate unembedding to vocab logits. Width = num_q_heads *
// head_dim. RoPE rotates the pairs (j, j + head_dim/2) of each head by position *
// 10000^(-2j/head_dim) (the GPT-NeoX / Llama layout).
//
// Weights come from SplitMix64 seeded with config.seed, as uniform floats in [-a, a) with a =
// sqrt(3 / fan_in) (unit variance through each projection); norm gains are 1. Integer-exact
// generation makes the weights identical on every run and machine.
//
// Every matrix is stored [in][out] and each token's row of a product is computed by the same
// float operations in the same order whatever the pass size, so the logits of a position do
// not depend on how the sequence was split into passes: a pass over the whole sequence and
// one pass per token give bit-identical results when the attention backends do.
//
// Thread-safety: immutable after Create; Forward is const and may run concurrently (each call
// with its own LayerAttention).
#ifndef KVTIER_CLIENT_GENERATE_TOY_TRANSFORMER_H_
#define KVTIER_CLIENT_GENERATE_TOY_TRANSFORMER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/generate/layer_attention.h"

namespace kvtier {

struct ToyTransformerConfig {
  int num_layers = 4;
  int num_q_heads = 8;
  int num_kv_heads = 2;
  int head_dim = 64;  // even (RoPE rotates pairs)
  int vocab_size = 512;
  int mlp_hidden = 1024;
  uint64_t seed = 1;

  int width() const { return num_q_heads * head_dim; }
  AttentionShape attention_shape() const {
    return AttentionShape{num_layers, num_q_heads, num_kv_heads, head_dim};
  }
  // INVALID_ARGUMENT naming the field unless every size is positive, num_kv_heads divides
  // num_q_heads and head_dim is even.
  absl::Status Validate() const;
};

// SplitMix64 (Steele, Lea, Flood 2014; Vigna's reference constants): the weights' generator.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1), a multiple of 2^-23: the top 24 bits, exactly representable.
  float NextSymmetric() {
    return static_cast<float>(static_cast<int32_t>(Next() >> 40) - (1 << 23)) * 0x1p-23f;
  }

 private:
  uint64_t state_;
};

// The parameters, every matrix [in][out] row-major.
struct ToyTransformerWeights {
  struct Layer {
    std::vector<float> attention_norm;  // [width]
    std::vector<float> wq;              // [width][width]
    std::vector<float> wk;              // [width][kv_width]
    std::vector<float> wv;              // [width][kv_width]
    std::vector<float> wo;              // [width][width]
    std::vector<float> mlp_norm;        // [width]
    std::vector<float> w_up;            // [width][mlp_hidden]
    std::vector<float> w_down;          // [mlp_hidden][width]
  };
  std::vector<float> embedding;    // [vocab_size][width]
  std::vector<Layer> layers;       // [num_layers]
  std::vector<float> final_norm;   // [width]
  std::vector<float> unembedding;  // [width][vocab_size]
};

class ToyTransformer {
 public:
  // INVALID_ARGUMENT naming the field for a bad config.
  static absl::StatusOr<std::unique_ptr<ToyTransformer>> Create(const ToyTransformerConfig& config);

  // Runs one forward pass over `tokens`, the sequence's positions [start_pos, start_pos + n),
  // through `attention` (BeginStep, Attend per layer, EndStep), and sets *last_logits to the
  // vocab_size logits after the last of them. INVALID_ARGUMENT naming the field for no tokens,
  // a token id outside [0, vocab_size), a negative start_pos or a null pointer; otherwise the
  // backend's status. On error *last_logits is unspecified and the pass is not committed.
  absl::Status Forward(absl::Span<const int32_t> tokens, int start_pos, LayerAttention* attention,
                       std::vector<float>* last_logits) const;

  const ToyTransformerConfig& config() const { return config_; }
  AttentionShape attention_shape() const { return config_.attention_shape(); }
  int64_t num_parameters() const;

  // Read-only, for tests and tools.
  const ToyTransformerWeights& weights() const { return weights_; }

 private:
  explicit ToyTransformer(const ToyTransformerConfig& config);

  const ToyTransformerConfig config_;
  ToyTransformerWeights weights_;
  std::vector<double> rope_frequency_;  // [head_dim / 2]: 10000^(-2j/head_dim)
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_GENERATE_TOY_TRANSFORMER_H_
