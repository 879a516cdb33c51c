// StepTensors: one layer's q, k and v for the rows of a step, as a model would make them, and
// the buffer its attention output comes back in. A row's values are a deterministic function
// of (stream, layer, position): k and v from a key/value stream, q from a query stream, each
// element uniform in [-1, 1) from SplitMix64 and rounded to the model's dtype. So every session
// of a prefix group, giving its system prompt's tokens the group's stream, writes the same k/v
// for them, as a real model would for the same tokens, and a verifier can redraw the k/v of
// tokens a session found cached instead of computing.
//
// The fp32 values (after rounding to the dtype) are kept beside the encoded bytes: they are
// exactly what the tier receives, for the reference.
//
// Not thread-safe: one per session driver.
#ifndef KVTIER_CLIENT_LOAD_STEP_TENSORS_H_
#define KVTIER_CLIENT_LOAD_STEP_TENSORS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "cache/kv/dtype.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

class StepTensors {
 public:
  // `model` must be valid with a known dtype.
  StepTensors(const v1::ModelSpec& model, DType dtype);

  // Sizes the buffers for `rows` tokens; the values are drawn by DrawRow.
  void Resize(int rows);
  // Draws row `row`: the token at `position` of layer `layer`.
  void DrawRow(int row, int layer, int position, uint64_t q_stream, uint64_t kv_stream);
  // Draws only the k and v a token at `position` of `layer` has in `kv_stream`, into k and v
  // (kv_width floats each), rounded to `dtype`.
  static void DrawKv(const v1::ModelSpec& model, DType dtype, int layer, int position,
                     uint64_t kv_stream, float* k, float* v);

  int rows() const { return rows_; }
  absl::Span<const char> q_bytes() const { return q_bytes_; }
  absl::Span<const char> k_bytes() const { return k_bytes_; }
  absl::Span<const char> v_bytes() const { return v_bytes_; }
  absl::Span<char> out_bytes() { return absl::MakeSpan(out_bytes_); }
  absl::Span<const float> q() const { return q_; }
  absl::Span<const float> k() const { return k_; }
  absl::Span<const float> v() const { return v_; }
  // The output as fp32.
  std::vector<float> Output() const;
  // Adds `delta` to the first output element, in the dtype (a test's wrong answer).
  void CorruptOutput(float delta);

 private:
  // `count` values of (stream, layer, position) into `values` and, encoded, `bytes`.
  void Draw(uint64_t stream, int layer, int position, int count, float* values, char* bytes);

  const DType dtype_;
  const int q_width_;   // num_q_heads * head_dim
  const int kv_width_;  // num_kv_heads * head_dim
  int rows_ = 0;
  std::vector<float> q_, k_, v_;                               // [rows][width]
  std::vector<char> q_bytes_, k_bytes_, v_bytes_, out_bytes_;  // the same, in dtype_
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_STEP_TENSORS_H_
