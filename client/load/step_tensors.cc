#include "client/load/step_tensors.h"

#include "client/generate/toy_transformer.h"

namespace kvtier {
namespace {

// One generator for (stream, layer, position, which: 0 q, 1 k, 2 v).
SplitMix64 RowGenerator(uint64_t stream, int layer, int position, int which) {
  SplitMix64 mix(stream ^ (static_cast<uint64_t>(layer) << 48) ^
                 (static_cast<uint64_t>(position) << 2) ^ static_cast<uint64_t>(which));
  return SplitMix64(mix.Next());
}

void DrawValues(SplitMix64 rng, DType dtype, int count, float* values, char* bytes) {
  for (int i = 0; i < count; ++i) values[i] = rng.NextSymmetric();
  StoreRowFromFloat(dtype, values, 1.0f, bytes, 0, count);
  LoadRowAsFloat(dtype, bytes, 0, count, values);
}

}  // namespace

StepTensors::StepTensors(const v1::ModelSpec& model, DType dtype)
    : dtype_(dtype),
      q_width_(model.num_q_heads() * model.head_dim()),
      kv_width_(model.num_kv_heads() * model.head_dim()) {}

void StepTensors::Resize(int rows) {
  rows_ = rows;
  const int size = DTypeSize(dtype_);
  q_.resize(size_t{1} * rows * q_width_);
  k_.resize(size_t{1} * rows * kv_width_);
  v_.resize(k_.size());
  q_bytes_.resize(q_.size() * size);
  out_bytes_.resize(q_bytes_.size());
  k_bytes_.resize(k_.size() * size);
  v_bytes_.resize(k_bytes_.size());
}

void StepTensors::DrawRow(int row, int layer, int position, uint64_t q_stream, uint64_t kv_stream) {
  const size_t size = DTypeSize(dtype_);
  const size_t q_at = size_t{1} * row * q_width_;
  const size_t kv_at = size_t{1} * row * kv_width_;
  DrawValues(RowGenerator(q_stream, layer, position, 0), dtype_, q_width_, &q_[q_at],
             &q_bytes_[q_at * size]);
  DrawValues(RowGenerator(kv_stream, layer, position, 1), dtype_, kv_width_, &k_[kv_at],
             &k_bytes_[kv_at * size]);
  DrawValues(RowGenerator(kv_stream, layer, position, 2), dtype_, kv_width_, &v_[kv_at],
             &v_bytes_[kv_at * size]);
}

void StepTensors::DrawKv(const v1::ModelSpec& model, DType dtype, int layer, int position,
                         uint64_t kv_stream, float* k, float* v) {
  const int width = model.num_kv_heads() * model.head_dim();
  std::vector<char> scratch(size_t{1} * width * DTypeSize(dtype));
  DrawValues(RowGenerator(kv_stream, layer, position, 1), dtype, width, k, scratch.data());
  DrawValues(RowGenerator(kv_stream, layer, position, 2), dtype, width, v, scratch.data());
}

std::vector<float> StepTensors::Output() const {
  std::vector<float> out(q_.size());
  LoadRowAsFloat(dtype_, out_bytes_.data(), 0, static_cast<int>(out.size()), out.data());
  return out;
}

void StepTensors::CorruptOutput(float delta) {
  StoreFromFloat(dtype_, LoadAsFloat(dtype_, out_bytes_.data(), 0) + delta, out_bytes_.data(), 0);
}

}  // namespace kvtier
