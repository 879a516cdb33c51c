// ToyTransformer: config checks, pinned weights from a reference-checked SplitMix64, logits
// that do not depend on how a sequence is split into passes (recompute vs. LocalKvCache vs.
// chunked prefill), RoPE as a rotation at the pass's absolute positions whose scores depend
// only on relative ones, and token-id checks that leave the backend untouched.
#include "client/generate/toy_transformer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "client/generate/layer_attention.h"
#include "client/generate/local_kv_cache.h"
#include "client/generate/recompute_attention.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

// Fewer layers and a smaller vocabulary than the default keep the tests fast; the shapes that
// matter (GQA 8/2, head_dim 64) are kept.
ToyTransformerConfig SmallConfig(uint64_t seed) {
  ToyTransformerConfig config;
  config.num_layers = 2;
  config.vocab_size = 256;
  config.mlp_hidden = 512;
  config.seed = seed;
  return config;
}

std::unique_ptr<ToyTransformer> MakeModel(const ToyTransformerConfig& config) {
  absl::StatusOr<std::unique_ptr<ToyTransformer>> model = ToyTransformer::Create(config);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

std::unique_ptr<RecomputeAttention> MakeRecompute(const ToyTransformer& model) {
  return *RecomputeAttention::Create(model.attention_shape());
}

std::unique_ptr<LocalKvCache> MakeCache(const ToyTransformer& model, int max_tokens) {
  return *LocalKvCache::Create(model.attention_shape(), max_tokens);
}

// Every |a - b| within 1e-4 of max(1, |b|).
void ExpectLogitsNear(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], 1e-4 * std::max(1.0f, std::abs(b[i]))) << "logit " << i;
  }
}

TEST(SplitMix64Test, MatchesTheReferenceSequence) {
  // The first outputs of Vigna's splitmix64.c seeded with 1234567.
  SplitMix64 rng(1234567);
  EXPECT_EQ(rng.Next(), 6457827717110365317ull);
  EXPECT_EQ(rng.Next(), 3203168211198807973ull);
  EXPECT_EQ(rng.Next(), 9817491932198370423ull);
  EXPECT_EQ(rng.Next(), 4593380528125082431ull);
  EXPECT_EQ(rng.Next(), 16408922859458223821ull);
}

TEST(SplitMix64Test, SymmetricFloatsAreTheTop24Bits) {
  SplitMix64 rng(1234567);
  SplitMix64 copy(1234567);
  for (int i = 0; i < 1000; ++i) {
    const float x = rng.NextSymmetric();
    const int64_t top = static_cast<int64_t>(copy.Next() >> 40);
    ASSERT_EQ(x, static_cast<float>(top - (1 << 23)) / (1 << 23));
    ASSERT_GE(x, -1.0f);
    ASSERT_LT(x, 1.0f);
  }
}

TEST(ToyTransformerTest, WeightsArePinned) {
  // NOTE: these values define the default model; every machine must produce them. A change
  // here means every mode's generated tokens change too.
  std::unique_ptr<ToyTransformer> model = MakeModel(ToyTransformerConfig{});
  ASSERT_NE(model, nullptr);
  SplitMix64 rng(1);
  const ToyTransformerWeights& weights = model->weights();
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(weights.embedding[i], rng.NextSymmetric() * std::sqrt(3.0f)) << i;
  }
  EXPECT_EQ(weights.embedding[0], 0x1.d83828p-3f);
  EXPECT_EQ(weights.embedding[1], 0x1.b3ec62p-1f);
  // The first of Wq follows the embedding, scaled by sqrt(3 / 512).
  SplitMix64 after(1);
  for (int i = 0; i < 512 * 512; ++i) after.Next();
  EXPECT_EQ(weights.layers[0].wq[0], after.NextSymmetric() * std::sqrt(3.0f / 512));
  EXPECT_EQ(model->num_parameters(),
            512 * 512 * 2 + 512 + 4 * (2 * 512 + 512 * 512 * 2 + 512 * 128 * 2 + 512 * 1024 * 2));
}

TEST(ToyTransformerTest, SameSeedSameLogitsOtherSeedOthers) {
  const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6};
  std::vector<float> a, b, c;
  std::unique_ptr<ToyTransformer> model = MakeModel(SmallConfig(5));
  std::unique_ptr<ToyTransformer> same = MakeModel(SmallConfig(5));
  std::unique_ptr<ToyTransformer> other = MakeModel(SmallConfig(6));
  ASSERT_TRUE(model->Forward(tokens, 0, MakeRecompute(*model).get(), &a).ok());
  ASSERT_TRUE(same->Forward(tokens, 0, MakeRecompute(*same).get(), &b).ok());
  ASSERT_TRUE(other->Forward(tokens, 0, MakeRecompute(*other).get(), &c).ok());
  ASSERT_EQ(a.size(), 256u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (float x : a) ASSERT_TRUE(std::isfinite(x));
}

TEST(ToyTransformerTest, CachedLogitsMatchRecomputeAtEveryPosition) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::unique_ptr<ToyTransformer> model = MakeModel(SmallConfig(seed));
    ASSERT_NE(model, nullptr);
    std::vector<int32_t> sequence;
    for (int i = 0; i < 12; ++i) {
      sequence.push_back(static_cast<int32_t>((seed * 97 + i * 31) % 256));
    }
    const absl::Span<const int32_t> all = sequence;

    std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 16);
    std::vector<float> cached, recomputed;
    for (int p = 0; p < static_cast<int>(sequence.size()); ++p) {
      std::unique_ptr<RecomputeAttention> recompute = MakeRecompute(*model);
      ASSERT_TRUE(model->Forward(all.subspan(p, 1), p, cache.get(), &cached).ok());
      ASSERT_TRUE(model->Forward(all.subspan(0, p + 1), 0, recompute.get(), &recomputed).ok());
      SCOPED_TRACE(testing::Message() << "position " << p);
      ExpectLogitsNear(cached, recomputed);
    }
  }
}

TEST(ToyTransformerTest, ChunkedPrefillMatchesOnePass) {
  std::unique_ptr<ToyTransformer> model = MakeModel(SmallConfig(9));
  std::vector<int32_t> sequence;
  for (int i = 0; i < 11; ++i) sequence.push_back((i * 53 + 7) % 256);
  std::vector<float> whole, chunked;
  ASSERT_TRUE(model->Forward(sequence, 0, MakeCache(*model, 11).get(), &whole).ok());
  std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 11);
  const absl::Span<const int32_t> all = sequence;
  ASSERT_TRUE(model->Forward(all.subspan(0, 4), 0, cache.get(), &chunked).ok());
  ASSERT_TRUE(model->Forward(all.subspan(4, 6), 4, cache.get(), &chunked).ok());
  ASSERT_TRUE(model->Forward(all.subspan(10), 10, cache.get(), &chunked).ok());
  ExpectLogitsNear(chunked, whole);
}

// The architecture in toy_transformer.h written again as plain double-precision loops over
// the whole sequence from position 0, sharing no code with the model. Returns the last
// position's logits.
std::vector<double> ReferenceForward(const ToyTransformer& model,
                                     const std::vector<int32_t>& tokens) {
  const ToyTransformerConfig& c = model.config();
  const ToyTransformerWeights& w = model.weights();
  const int n = static_cast<int>(tokens.size());
  const int width = c.width(), kv_width = c.num_kv_heads * c.head_dim, d = c.head_dim;
  using Matrix = std::vector<std::vector<double>>;  // [token][feature]
  auto matmul = [n](const Matrix& x, const std::vector<float>& m, int in, int out) {
    Matrix y(n, std::vector<double>(out, 0.0));
    for (int t = 0; t < n; ++t) {
      for (int o = 0; o < out; ++o) {
        for (int i = 0; i < in; ++i) y[t][o] += x[t][i] * m[static_cast<size_t>(i) * out + o];
      }
    }
    return y;
  };
  auto rms_norm = [](const std::vector<double>& x, const std::vector<float>& gain) {
    double sum = 0.0;
    for (double e : x) sum += e * e;
    const double inv = 1.0 / std::sqrt(sum / x.size() + 1e-5);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * gain[i];
    return y;
  };
  auto rope = [&](Matrix& m, int heads) {
    for (int t = 0; t < n; ++t) {
      for (int h = 0; h < heads; ++h) {
        for (int j = 0; j < d / 2; ++j) {
          const double angle = t * std::pow(10000.0, -2.0 * j / d);
          double& a = m[t][h * d + j];
          double& b = m[t][h * d + j + d / 2];
          const double ra = a * std::cos(angle) - b * std::sin(angle);
          const double rb = a * std::sin(angle) + b * std::cos(angle);
          a = ra;
          b = rb;
        }
      }
    }
  };

  Matrix x(n);
  for (int t = 0; t < n; ++t) {
    x[t].assign(w.embedding.begin() + static_cast<size_t>(tokens[t]) * width,
                w.embedding.begin() + static_cast<size_t>(tokens[t] + 1) * width);
  }
  for (const ToyTransformerWeights::Layer& layer : w.layers) {
    Matrix h(n);
    for (int t = 0; t < n; ++t) h[t] = rms_norm(x[t], layer.attention_norm);
    Matrix q = matmul(h, layer.wq, width, width);
    Matrix k = matmul(h, layer.wk, width, kv_width);
    const Matrix v = matmul(h, layer.wv, width, kv_width);
    rope(q, c.num_q_heads);
    rope(k, c.num_kv_heads);
    Matrix attended(n, std::vector<double>(width, 0.0));
    for (int t = 0; t < n; ++t) {
      for (int head = 0; head < c.num_q_heads; ++head) {
        const int kv = head / (c.num_q_heads / c.num_kv_heads);
        std::vector<double> p(t + 1);
        double max_score = -INFINITY, sum = 0.0;
        for (int s = 0; s <= t; ++s) {
          p[s] = 0.0;
          for (int j = 0; j < d; ++j) p[s] += q[t][head * d + j] * k[s][kv * d + j];
          p[s] /= std::sqrt(static_cast<double>(d));
          max_score = std::max(max_score, p[s]);
        }
        for (int s = 0; s <= t; ++s) sum += (p[s] = std::exp(p[s] - max_score));
        for (int s = 0; s <= t; ++s) {
          for (int j = 0; j < d; ++j) attended[t][head * d + j] += p[s] / sum * v[s][kv * d + j];
        }
      }
    }
    const Matrix projected = matmul(attended, layer.wo, width, width);
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < width; ++i) x[t][i] += projected[t][i];
    }
    for (int t = 0; t < n; ++t) h[t] = rms_norm(x[t], layer.mlp_norm);
    Matrix up = matmul(h, layer.w_up, width, c.mlp_hidden);
    for (auto& row : up) {
      for (double& u : row) u = u / (1.0 + std::exp(-u));
    }
    const Matrix down = matmul(up, layer.w_down, c.mlp_hidden, width);
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < width; ++i) x[t][i] += down[t][i];
    }
  }
  const Matrix last = {rms_norm(x[n - 1], w.final_norm)};
  Matrix logits(1, std::vector<double>(c.vocab_size, 0.0));
  for (int o = 0; o < c.vocab_size; ++o) {
    for (int i = 0; i < width; ++i) {
      logits[0][o] += last[0][i] * w.unembedding[static_cast<size_t>(i) * c.vocab_size + o];
    }
  }
  return logits[0];
}

TEST(ToyTransformerTest, MatchesADoublePrecisionReference) {
  ToyTransformerConfig odd;  // widths off every tile and vector size
  odd.num_layers = 3;
  odd.num_q_heads = 3;
  odd.num_kv_heads = 1;
  odd.head_dim = 6;
  odd.vocab_size = 37;
  odd.mlp_hidden = 13;
  ToyTransformerConfig wide;  // a column panel and a half, GQA 2
  wide.num_layers = 2;
  wide.num_q_heads = 6;
  wide.num_kv_heads = 3;
  wide.head_dim = 50;
  wide.vocab_size = 300;
  wide.mlp_hidden = 270;
  wide.seed = 8;
  for (const ToyTransformerConfig& config : {ToyTransformerConfig{}, odd, wide}) {
    SCOPED_TRACE(testing::Message() << "width " << config.width());
    std::unique_ptr<ToyTransformer> model = MakeModel(config);
    ASSERT_NE(model, nullptr);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 7; ++i) tokens.push_back((i * 29 + 5) % config.vocab_size);
    const std::vector<double> expected = ReferenceForward(*model, tokens);

    std::vector<float> recomputed, cached;
    ASSERT_TRUE(model->Forward(tokens, 0, MakeRecompute(*model).get(), &recomputed).ok());
    std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 8);
    const absl::Span<const int32_t> all = tokens;
    ASSERT_TRUE(model->Forward(all.subspan(0, 5), 0, cache.get(), &cached).ok());
    ASSERT_TRUE(model->Forward(all.subspan(5, 1), 5, cache.get(), &cached).ok());
    ASSERT_TRUE(model->Forward(all.subspan(6, 1), 6, cache.get(), &cached).ok());
    ASSERT_EQ(recomputed.size(), expected.size());
    // NOTE: fp32 against double lands within 1e-5 here; the tolerance leaves 10x.
    for (size_t i = 0; i < expected.size(); ++i) {
      const double tolerance = 1e-4 * std::max(1.0, std::abs(expected[i]));
      ASSERT_NEAR(recomputed[i], expected[i], tolerance) << "logit " << i;
      ASSERT_NEAR(cached[i], expected[i], tolerance) << "logit " << i;
    }
  }
}

// Attends over exactly the k, v of the pass, like RecomputeAttention, but at any start
// position; records layer 0's q, k, v.
class AnyPositionRecompute final : public LayerAttention {
 public:
  explicit AnyPositionRecompute(const AttentionShape& shape) : shape_(shape) {}
  absl::StatusOr<int> BeginStep(int start_pos, absl::Span<const int32_t> tokens) override {
    num_tokens_ = static_cast<int>(tokens.size());
    return 0;
  }
  absl::Status Attend(int layer, absl::Span<const float> q, absl::Span<const float> k,
                      absl::Span<const float> v, absl::Span<float> out) override {
    if (layer == 0) {
      q0.assign(q.begin(), q.end());
      k0.assign(k.begin(), k.end());
      v0.assign(v.begin(), v.end());
    }
    CausalAttention(shape_, num_tokens_, q, k, v, out);
    return absl::OkStatus();
  }
  absl::Status EndStep() override { return absl::OkStatus(); }

  std::vector<float> q0, k0, v0;

 private:
  const AttentionShape shape_;
  int num_tokens_ = 0;
};

TEST(ToyTransformerTest, RopeScoresDependOnlyOnRelativePositions) {
  std::unique_ptr<ToyTransformer> model = MakeModel(SmallConfig(4));
  const std::vector<int32_t> tokens = {17, 200, 3};
  AnyPositionRecompute at_zero(model->attention_shape());
  AnyPositionRecompute shifted(model->attention_shape());
  std::vector<float> logits_at_zero, logits_shifted;
  ASSERT_TRUE(model->Forward(tokens, 0, &at_zero, &logits_at_zero).ok());
  ASSERT_TRUE(model->Forward(tokens, 1000, &shifted, &logits_shifted).ok());

  // V is not rotated; q and k are, pairs (j, j + 32) keeping their norms, and position 0 of
  // the first pass not at all.
  EXPECT_EQ(at_zero.v0, shifted.v0);
  EXPECT_NE(at_zero.q0, shifted.q0);
  EXPECT_NE(at_zero.k0, shifted.k0);
  for (const auto* pass : {&at_zero, &shifted}) {
    ASSERT_EQ(pass->q0.size(), 3u * 512);
  }
  for (size_t head = 0; head < at_zero.q0.size() / 64; ++head) {
    for (int j = 0; j < 32; ++j) {
      const float* a = &at_zero.q0[head * 64];
      const float* b = &shifted.q0[head * 64];
      EXPECT_NEAR(std::hypot(a[j], a[j + 32]), std::hypot(b[j], b[j + 32]), 1e-4)
          << "head row " << head << " pair " << j;
    }
  }
  // Scores depend only on relative positions: the same logits up to rounding.
  ExpectLogitsNear(logits_shifted, logits_at_zero);
}

TEST(ToyTransformerTest, RopeTurnsPairZeroOneRadianPerPosition) {
  std::unique_ptr<ToyTransformer> model = MakeModel(SmallConfig(4));
  const std::vector<int32_t> token = {17};
  AnyPositionRecompute at_zero(model->attention_shape());
  AnyPositionRecompute at_one(model->attention_shape());
  std::vector<float> logits;
  ASSERT_TRUE(model->Forward(token, 0, &at_zero, &logits).ok());
  ASSERT_TRUE(model->Forward(token, 1, &at_one, &logits).ok());
  // Position 1 rotates pair 0 by 1 radian: (a, b) -> (a cos 1 - b sin 1, a sin 1 + b cos 1).
  const float a = at_zero.k0[0], b = at_zero.k0[32];
  EXPECT_NEAR(at_one.k0[0], a * std::cos(1.0f) - b * std::sin(1.0f), 1e-5);
  EXPECT_NEAR(at_one.k0[32], a * std::sin(1.0f) + b * std::cos(1.0f), 1e-5);
}

TEST(ToyTransformerTest, RejectsBadTokensWithoutTouchingTheBackend) {
  std::unique_ptr<ToyTransformer> model = MakeModel(SmallConfig(1));
  std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 8);
  std::vector<float> logits;
  for (int32_t bad : {-1, 256, 1 << 30}) {
    const std::vector<int32_t> tokens = {1, bad, 2};
    const absl::Status status = model->Forward(tokens, 0, cache.get(), &logits);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("tokens[1]: expected a token id in [0, 256)"));
  }
  EXPECT_EQ(model->Forward({}, 0, cache.get(), &logits).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> good = {1, 2};
  EXPECT_THAT(model->Forward(good, -1, cache.get(), &logits).message(), HasSubstr("start_pos"));
  EXPECT_THAT(model->Forward(good, 0, nullptr, &logits).message(), HasSubstr("attention"));
  EXPECT_THAT(model->Forward(good, 0, cache.get(), nullptr).message(), HasSubstr("last_logits"));
  EXPECT_EQ(cache->num_tokens(), 0);
  EXPECT_TRUE(model->Forward(good, 0, cache.get(), &logits).ok());
}

TEST(ToyTransformerTest, PassesTheBackendsStatusThrough) {
  std::unique_ptr<ToyTransformer> model = MakeModel(SmallConfig(1));
  std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 2);
  std::vector<float> logits;
  const std::vector<int32_t> tokens = {1, 2, 3};
  EXPECT_EQ(model->Forward(tokens, 0, cache.get(), &logits).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(model->Forward(tokens, 2, MakeRecompute(*model).get(), &logits).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ToyTransformerConfigTest, NamesTheBadField) {
  struct Bad {
    void (*mutate)(ToyTransformerConfig&);
    const char* field;
  };
  const Bad cases[] = {
      {[](ToyTransformerConfig& c) { c.num_layers = 0; }, "num_layers"},
      {[](ToyTransformerConfig& c) { c.num_q_heads = -1; }, "num_q_heads"},
      {[](ToyTransformerConfig& c) { c.num_kv_heads = 3; }, "num_kv_heads"},
      {[](ToyTransformerConfig& c) { c.head_dim = 63; }, "head_dim: must be even"},
      {[](ToyTransformerConfig& c) { c.vocab_size = 0; }, "vocab_size"},
      {[](ToyTransformerConfig& c) { c.mlp_hidden = 0; }, "mlp_hidden"},
      {[](ToyTransformerConfig& c) { c.vocab_size = 1 << 25; }, "vocab_size: at most"},
  };
  for (const Bad& bad : cases) {
    ToyTransformerConfig config;
    bad.mutate(config);
    const absl::Status status = ToyTransformer::Create(config).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad.field;
    EXPECT_THAT(status.message(), HasSubstr(bad.field));
  }
}

}  // namespace
}  // namespace kvtier
