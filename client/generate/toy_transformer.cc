#include "client/generate/toy_transformer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

constexpr double kRopeBase = 10000.0;
constexpr float kNormEpsilon = 1e-5f;

// y[n][out] += x[n][in] · w[in][out], all row-major.
//
// NOTE: each y[t][j] is built as ((y[t][j] + x[t][0]*w[0][j]) + x[t][1]*w[1][j]) + ... in
// that order whatever n and the tiling, so a token's result does not depend on the pass it is
// in. The inner loops run along weight rows (y[j] = y[j] + a0*w0[j] + a1*w1[j] + ...), which
// vectorize without reassociation; four weight rows per sweep quarter the loads and stores of
// y. Tiles of kRows tokens reuse those four rows from L1, and a kCols-wide column panel of w
// stays in L2 while the token tiles sweep it.
void MatMulAdd(const float* x, int n, int in, const float* w, int out, float* y) {
  constexpr int kRows = 4;
  constexpr int kCols = 256;
  for (int c0 = 0; c0 < out; c0 += kCols) {
    const int cols = std::min(kCols, out - c0);
    for (int t0 = 0; t0 < n; t0 += kRows) {
      const int rows = std::min(kRows, n - t0);
      int i = 0;
      for (; i + 4 <= in; i += 4) {
        const float* __restrict w0 = w + int64_t{i} * out + c0;
        const float* __restrict w1 = w0 + out;
        const float* __restrict w2 = w1 + out;
        const float* __restrict w3 = w2 + out;
        for (int r = 0; r < rows; ++r) {
          const float* xr = x + int64_t{t0 + r} * in + i;
          const float a0 = xr[0], a1 = xr[1], a2 = xr[2], a3 = xr[3];
          float* __restrict yr = y + int64_t{t0 + r} * out + c0;
          for (int j = 0; j < cols; ++j) {
            yr[j] = yr[j] + a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j];
          }
        }
      }
      for (; i < in; ++i) {
        const float* __restrict wi = w + int64_t{i} * out + c0;
        for (int r = 0; r < rows; ++r) {
          const float a = x[int64_t{t0 + r} * in + i];
          float* __restrict yr = y + int64_t{t0 + r} * out + c0;
          for (int j = 0; j < cols; ++j) yr[j] += a * wi[j];
        }
      }
    }
  }
}

// y[n][out] = x[n][in] · w[in][out].
void MatMul(const float* x, int n, int in, const float* w, int out, float* y) {
  std::fill(y, y + int64_t{n} * out, 0.0f);
  MatMulAdd(x, n, in, w, out, y);
}

// y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * gain, for each of n rows of `width`.
void RmsNorm(const float* x, int n, int width, const float* gain, float* y) {
  // NOTE: kLanes partial sums, reduced in a fixed order: they vectorize without -ffast-math
  // and round the same way on every call.
  constexpr int kLanes = 16;
  for (int t = 0; t < n; ++t) {
    const float* xt = x + int64_t{t} * width;
    float partial[kLanes] = {};
    int j = 0;
    for (; j + kLanes <= width; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) partial[l] += xt[j + l] * xt[j + l];
    }
    for (int l = 0; j + l < width; ++l) partial[l] += xt[j + l] * xt[j + l];
    float sum = 0.0f;
    for (int l = 0; l < kLanes; ++l) sum += partial[l];
    const float inv_rms = 1.0f / std::sqrt(sum / static_cast<float>(width) + kNormEpsilon);
    float* yt = y + int64_t{t} * width;
    for (int c = 0; c < width; ++c) yt[c] = xt[c] * inv_rms * gain[c];
  }
}

// Rotates each of `heads` heads of n rows by its row's angles: x is [n][heads][head_dim],
// cos_sin [n][head_dim / 2][2].
void ApplyRope(const std::vector<float>& cos_sin, int n, int heads, int head_dim, float* x) {
  const int half = head_dim / 2;
  for (int t = 0; t < n; ++t) {
    const float* angles = cos_sin.data() + int64_t{t} * head_dim;
    for (int h = 0; h < heads; ++h) {
      float* head = x + (int64_t{t} * heads + h) * head_dim;
      for (int j = 0; j < half; ++j) {
        const float c = angles[2 * j], s = angles[2 * j + 1];
        const float a = head[j], b = head[j + half];
        head[j] = a * c - b * s;
        head[j + half] = a * s + b * c;
      }
    }
  }
}

void FillUniform(SplitMix64& rng, int64_t count, int fan_in, std::vector<float>* weights) {
  const float scale = std::sqrt(3.0f / static_cast<float>(fan_in));
  weights->resize(count);
  for (float& w : *weights) w = rng.NextSymmetric() * scale;
}

absl::Status Positive(const char* field, int value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be positive, got ", value));
}

}  // namespace

absl::Status ToyTransformerConfig::Validate() const {
  if (absl::Status s = attention_shape().Validate(); !s.ok()) return s;
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim: must be even (RoPE rotates pairs), got ", head_dim));
  }
  if (absl::Status s = Positive("vocab_size", vocab_size); !s.ok()) return s;
  if (absl::Status s = Positive("mlp_hidden", mlp_hidden); !s.ok()) return s;
  // NOTE: the largest matrix must index in int64 and a token's row in int; 2^24 bounds every
  // width here far inside both.
  for (const auto& [field, value] : {std::pair<const char*, int64_t>{"width", width()},
                                     {"vocab_size", vocab_size},
                                     {"mlp_hidden", mlp_hidden}}) {
    if (value > (1 << 24)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": at most ", 1 << 24, ", got ", value));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ToyTransformer>> ToyTransformer::Create(
    const ToyTransformerConfig& config) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  return std::unique_ptr<ToyTransformer>(new ToyTransformer(config));
}

ToyTransformer::ToyTransformer(const ToyTransformerConfig& config) : config_(config) {
  const int width = config.width();
  const int kv_width = config.num_kv_heads * config.head_dim;
  const int hidden = config.mlp_hidden;
  SplitMix64 rng(config.seed);
  // NOTE: the fill order is part of the weights' definition; changing it changes every model.
  // The embedding has unit variance per element (fan_in 1).
  FillUniform(rng, int64_t{config.vocab_size} * width, 1, &weights_.embedding);
  weights_.layers.resize(config.num_layers);
  for (ToyTransformerWeights::Layer& layer : weights_.layers) {
    layer.attention_norm.assign(width, 1.0f);
    FillUniform(rng, int64_t{width} * width, width, &layer.wq);
    FillUniform(rng, int64_t{width} * kv_width, width, &layer.wk);
    FillUniform(rng, int64_t{width} * kv_width, width, &layer.wv);
    FillUniform(rng, int64_t{width} * width, width, &layer.wo);
    layer.mlp_norm.assign(width, 1.0f);
    FillUniform(rng, int64_t{width} * hidden, width, &layer.w_up);
    FillUniform(rng, int64_t{hidden} * width, hidden, &layer.w_down);
  }
  weights_.final_norm.assign(width, 1.0f);
  FillUniform(rng, int64_t{width} * config.vocab_size, width, &weights_.unembedding);
  const int half = config.head_dim / 2;
  rope_frequency_.resize(half);
  for (int j = 0; j < half; ++j) {
    rope_frequency_[j] = std::pow(kRopeBase, -2.0 * j / config.head_dim);
  }
}

int64_t ToyTransformer::num_parameters() const {
  int64_t count =
      weights_.embedding.size() + weights_.final_norm.size() + weights_.unembedding.size();
  for (const ToyTransformerWeights::Layer& layer : weights_.layers) {
    count += layer.attention_norm.size() + layer.wq.size() + layer.wk.size() + layer.wv.size() +
             layer.wo.size() + layer.mlp_norm.size() + layer.w_up.size() + layer.w_down.size();
  }
  return count;
}

absl::Status ToyTransformer::Forward(absl::Span<const int32_t> tokens, int start_pos,
                                     LayerAttention* attention,
                                     std::vector<float>* last_logits) const {
  if (attention == nullptr) return absl::InvalidArgumentError("attention: null");
  if (last_logits == nullptr) return absl::InvalidArgumentError("last_logits: null");
  if (tokens.empty()) return absl::InvalidArgumentError("tokens: empty");
  if (start_pos < 0 ||
      static_cast<int64_t>(tokens.size()) > std::numeric_limits<int>::max() - start_pos) {
    return absl::InvalidArgumentError(absl::StrCat("start_pos: must be in [0, ",
                                                   std::numeric_limits<int>::max(), " - ",
                                                   tokens.size(), "], got ", start_pos));
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("tokens[", i, "]: expected a token id in [0, ",
                                                     config_.vocab_size, "), got ", tokens[i]));
    }
  }
  absl::StatusOr<int> cached = attention->BeginStep(start_pos, tokens);
  if (!cached.ok()) return cached.status();
  // The backend holds the first tokens' K/V already: compute the others only.
  tokens.remove_prefix(*cached);
  start_pos += *cached;
  const int n = static_cast<int>(tokens.size());
  const int width = config_.width();
  const int kv_width = config_.num_kv_heads * config_.head_dim;
  const int hidden = config_.mlp_hidden;
  const int head_dim = config_.head_dim;

  // The residual stream x and per-pass scratch, all [n][...].
  std::vector<float> x(int64_t{n} * width);
  for (int t = 0; t < n; ++t) {
    std::copy_n(weights_.embedding.data() + int64_t{tokens[t]} * width, width,
                x.data() + int64_t{t} * width);
  }
  std::vector<float> h(int64_t{n} * width);
  std::vector<float> q(int64_t{n} * width);
  std::vector<float> k(int64_t{n} * kv_width);
  std::vector<float> v(int64_t{n} * kv_width);
  std::vector<float> attended(int64_t{n} * width);
  std::vector<float> up(int64_t{n} * hidden);
  std::vector<float> cos_sin(int64_t{n} * head_dim);
  for (int t = 0; t < n; ++t) {
    const double position = static_cast<double>(start_pos) + t;
    for (int j = 0; j < head_dim / 2; ++j) {
      const double angle = position * rope_frequency_[j];
      cos_sin[int64_t{t} * head_dim + 2 * j] = static_cast<float>(std::cos(angle));
      cos_sin[int64_t{t} * head_dim + 2 * j + 1] = static_cast<float>(std::sin(angle));
    }
  }

  for (int l = 0; l < config_.num_layers; ++l) {
    const ToyTransformerWeights::Layer& layer = weights_.layers[l];
    RmsNorm(x.data(), n, width, layer.attention_norm.data(), h.data());
    MatMul(h.data(), n, width, layer.wq.data(), width, q.data());
    MatMul(h.data(), n, width, layer.wk.data(), kv_width, k.data());
    MatMul(h.data(), n, width, layer.wv.data(), kv_width, v.data());
    ApplyRope(cos_sin, n, config_.num_q_heads, head_dim, q.data());
    ApplyRope(cos_sin, n, config_.num_kv_heads, head_dim, k.data());
    if (absl::Status s = attention->Attend(l, q, k, v, absl::MakeSpan(attended)); !s.ok()) {
      return s;
    }
    MatMulAdd(attended.data(), n, width, layer.wo.data(), width, x.data());

    RmsNorm(x.data(), n, width, layer.mlp_norm.data(), h.data());
    MatMul(h.data(), n, width, layer.w_up.data(), hidden, up.data());
    for (float& u : up) u = u / (1.0f + std::exp(-u));  // SiLU
    MatMulAdd(up.data(), n, hidden, layer.w_down.data(), width, x.data());
  }
  if (absl::Status s = attention->EndStep(); !s.ok()) return s;

  RmsNorm(x.data() + int64_t{n - 1} * width, 1, width, weights_.final_norm.data(), h.data());
  last_logits->resize(config_.vocab_size);
  MatMul(h.data(), 1, width, weights_.unembedding.data(), config_.vocab_size, last_logits->data());
  return absl::OkStatus();
}

}  // namespace kvtier
