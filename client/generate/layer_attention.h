// LayerAttention: the seam between a model's forward pass and wherever its keys and values
// live. The model computes projections, RoPE and MLPs; a LayerAttention stores (or not) each
// layer's new K/V and returns the causal attention of the new positions over the whole
// context. Backends: RecomputeAttention (nothing kept; every pass starts at position 0),
// LocalKvCache (an in-process cache) and the kvtier client (K/V in a remote tier).
//
// One forward pass is BeginStep, then Attend once per layer in order 0..num_layers-1, then
// EndStep. A pass that fails before EndStep is not committed: the next BeginStep starts again
// at the same position.
//
// Tensors are fp32, row-major: q and out [n][num_q_heads][head_dim], k and v
// [n][num_kv_heads][head_dim], n the pass's new tokens. Scores are scaled by 1/sqrt(head_dim);
// query head h reads KV head h / (num_q_heads / num_kv_heads) (grouped-query attention).
//
// Thread-safety: an object holds one generation's state and is not thread-safe.
#ifndef KVTIER_CLIENT_GENERATE_LAYER_ATTENTION_H_
#define KVTIER_CLIENT_GENERATE_LAYER_ATTENTION_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace kvtier {

// The attention geometry of a model: what every backend needs to size and check tensors.
struct AttentionShape {
  int num_layers = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;  // divides num_q_heads
  int head_dim = 0;

  int64_t q_width() const { return int64_t{num_q_heads} * head_dim; }    // floats per token
  int64_t kv_width() const { return int64_t{num_kv_heads} * head_dim; }  // floats per token

  // INVALID_ARGUMENT naming the field unless every count is positive and num_kv_heads divides
  // num_q_heads.
  absl::Status Validate() const {
    if (num_layers <= 0) return Invalid("num_layers", num_layers);
    if (num_q_heads <= 0) return Invalid("num_q_heads", num_q_heads);
    if (num_kv_heads <= 0 || num_q_heads % num_kv_heads != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("num_kv_heads: must be positive and divide num_q_heads (", num_q_heads,
                       "), got ", num_kv_heads));
    }
    if (head_dim <= 0) return Invalid("head_dim", head_dim);
    return absl::OkStatus();
  }

  // Checks one Attend call's arguments for a pass of `num_tokens` new tokens: the layer in
  // range and every tensor's size. INVALID_ARGUMENT naming the field otherwise.
  absl::Status ValidateAttend(int num_tokens, int layer, size_t q_size, size_t k_size,
                              size_t v_size, size_t out_size) const {
    if (layer < 0 || layer >= num_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer: expected 0..", num_layers - 1, ", got ", layer));
    }
    const int64_t q_floats = num_tokens * q_width();
    const int64_t kv_floats = num_tokens * kv_width();
    if (absl::Status s = CheckSize("q", q_size, q_floats, num_tokens, num_q_heads); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckSize("k", k_size, kv_floats, num_tokens, num_kv_heads); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckSize("v", v_size, kv_floats, num_tokens, num_kv_heads); !s.ok()) {
      return s;
    }
    return CheckSize("out", out_size, q_floats, num_tokens, num_q_heads);
  }

 private:
  static absl::Status Invalid(const char* field, int value) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be positive, got ", value));
  }
  absl::Status CheckSize(const char* field, size_t got, int64_t expected, int num_tokens,
                         int heads) const {
    if (static_cast<int64_t>(got) == expected) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, " floats (",
                                                   num_tokens, " tokens x ", heads, " heads x ",
                                                   head_dim, "), got ", got));
  }
};

// The order every pass follows, kept by each backend: BeginStep, Attend for layers
// 0..num_layers-1 in order, EndStep. Errors are FAILED_PRECONDITION saying what is out of
// order, or Attend's INVALID_ARGUMENT for a bad layer or tensor size.
class LayerPass {
 public:
  explicit LayerPass(const AttentionShape& shape) : shape_(shape) {}

  // A pass of `num_tokens` new tokens starts (num_tokens > 0).
  void Begin(int num_tokens) {
    num_tokens_ = num_tokens;
    next_layer_ = 0;
  }
  // No pass is in progress (a BeginStep that failed, a Reset).
  void Abandon() { num_tokens_ = 0; }

  bool active() const { return num_tokens_ > 0; }
  int num_tokens() const { return num_tokens_; }  // the pass's new tokens

  // Before an Attend does its work: in a pass, layer next in order, tensor sizes right.
  absl::Status CheckAttend(int layer, size_t q_size, size_t k_size, size_t v_size,
                           size_t out_size) const {
    if (!active()) return absl::FailedPreconditionError("Attend outside a pass (call BeginStep)");
    if (absl::Status s =
            shape_.ValidateAttend(num_tokens_, layer, q_size, k_size, v_size, out_size);
        !s.ok()) {
      return s;
    }
    if (layer != next_layer_) {
      return absl::FailedPreconditionError(
          absl::StrCat("layer: expected layer ", next_layer_, " next in this pass, got ", layer));
    }
    return absl::OkStatus();
  }
  // After an Attend succeeded.
  void Attended() { ++next_layer_; }

  // Ends the pass if every layer attended; FAILED_PRECONDITION (pass kept) otherwise.
  absl::Status End() {
    if (!active()) return absl::FailedPreconditionError("EndStep outside a pass");
    if (next_layer_ != shape_.num_layers) {
      return absl::FailedPreconditionError(absl::StrCat("EndStep after ", next_layer_, " of ",
                                                        shape_.num_layers, " layers attended"));
    }
    Abandon();
    return absl::OkStatus();
  }

 private:
  const AttentionShape shape_;
  int num_tokens_ = 0;  // 0: no pass in progress
  int next_layer_ = 0;
};

class LayerAttention {
 public:
  virtual ~LayerAttention() = default;

  // Starts a forward pass over `tokens`, the sequence's positions [start_pos, start_pos + n).
  // A backend checks start_pos against what it holds (0 for a recompute backend, the tokens
  // cached for a cache) and fails with FAILED_PRECONDITION on a mismatch, so RoPE positions
  // and cached positions can never disagree. Called once per pass, before Attend. Returns how
  // many of `tokens`, from the first, the backend already holds K/V for (a prefix shared with
  // another conversation; never all of them): the pass then covers the others only, and the
  // model skips computing the first ones.
  virtual absl::StatusOr<int> BeginStep(int start_pos, absl::Span<const int32_t> tokens) = 0;

  // Layer `layer` of the pass: q [n][num_q_heads][head_dim], k, v [n][num_kv_heads][head_dim]
  // (the new tokens, RoPE already applied to q and k). Writes the causal attention output of
  // the n new positions over the whole context, [n][num_q_heads][head_dim], into out.
  virtual absl::Status Attend(int layer, absl::Span<const float> q, absl::Span<const float> k,
                              absl::Span<const float> v, absl::Span<float> out) = 0;

  // Ends the pass; a cache commits the new tokens here.
  virtual absl::Status EndStep() = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_GENERATE_LAYER_ATTENTION_H_
