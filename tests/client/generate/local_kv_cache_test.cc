// LocalKvCache: a hand-checked two-token case; outputs bit-identical to RecomputeAttention
// over the whole sequence whatever the split into passes; capacity, Reset, sizes, and the
// argument and call-order checks.
#include "client/generate/local_kv_cache.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "client/generate/layer_attention.h"
#include "client/generate/recompute_attention.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<LocalKvCache> MakeCache(const AttentionShape& shape, int max_tokens) {
  absl::StatusOr<std::unique_ptr<LocalKvCache>> cache = LocalKvCache::Create(shape, max_tokens);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? *std::move(cache) : nullptr;
}

// Random q, k, v for every layer of a sequence: [layer][token][heads][head_dim].
struct SequenceTensors {
  std::vector<std::vector<float>> q, k, v;
};

SequenceTensors RandomSequence(const AttentionShape& shape, int num_tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](int64_t count) {
    std::vector<float> values(count);
    for (float& x : values) x = normal(rng);
    return values;
  };
  SequenceTensors tensors;
  for (int l = 0; l < shape.num_layers; ++l) {
    tensors.q.push_back(random(num_tokens * shape.q_width()));
    tensors.k.push_back(random(num_tokens * shape.kv_width()));
    tensors.v.push_back(random(num_tokens * shape.kv_width()));
  }
  return tensors;
}

// Runs tokens [start, start + n) of `tensors` as one pass; returns the outputs [layer][...].
std::vector<std::vector<float>> RunPass(LayerAttention& attention, const AttentionShape& shape,
                                        const SequenceTensors& tensors, int start, int n) {
  const std::vector<int32_t> tokens(n, 0);
  EXPECT_TRUE(attention.BeginStep(start, tokens).ok());
  std::vector<std::vector<float>> outputs;
  for (int l = 0; l < shape.num_layers; ++l) {
    auto slice = [&](const std::vector<float>& all, int64_t width) {
      return absl::MakeConstSpan(all).subspan(start * width, n * width);
    };
    std::vector<float> out(n * shape.q_width(), NAN);
    EXPECT_TRUE(attention
                    .Attend(l, slice(tensors.q[l], shape.q_width()),
                            slice(tensors.k[l], shape.kv_width()),
                            slice(tensors.v[l], shape.kv_width()), absl::MakeSpan(out))
                    .ok());
    outputs.push_back(std::move(out));
  }
  EXPECT_TRUE(attention.EndStep().ok());
  return outputs;
}

TEST(LocalKvCacheTest, HandCheckedTwoTokens) {
  // One head of 2: scale 1/sqrt(2). k0 = (1, 0), v0 = (1, 2); k1 = (0, 1), v1 = (3, 4).
  const AttentionShape shape{1, 1, 1, 2};
  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 4);
  ASSERT_NE(cache, nullptr);
  const float q0[] = {5.0f, -1.0f}, k0[] = {1.0f, 0.0f}, v0[] = {1.0f, 2.0f};
  const std::vector<int32_t> token = {7};
  std::vector<float> out(2);

  // Position 0 sees only itself: out = v0.
  ASSERT_TRUE(cache->BeginStep(0, token).ok());
  ASSERT_TRUE(cache->Attend(0, q0, k0, v0, absl::MakeSpan(out)).ok());
  ASSERT_TRUE(cache->EndStep().ok());
  EXPECT_FLOAT_EQ(out[0], 1.0f);
  EXPECT_FLOAT_EQ(out[1], 2.0f);

  // q1 = (sqrt(2) ln 3, 0): scores ln 3 and 0, weights 3/4 and 1/4,
  // out = 3/4 (1, 2) + 1/4 (3, 4) = (1.5, 2.5).
  const float q1[] = {static_cast<float>(std::sqrt(2.0) * std::log(3.0)), 0.0f};
  const float k1[] = {0.0f, 1.0f}, v1[] = {3.0f, 4.0f};
  ASSERT_TRUE(cache->BeginStep(1, token).ok());
  ASSERT_TRUE(cache->Attend(0, q1, k1, v1, absl::MakeSpan(out)).ok());
  ASSERT_TRUE(cache->EndStep().ok());
  EXPECT_NEAR(out[0], 1.5f, 1e-6);
  EXPECT_NEAR(out[1], 2.5f, 1e-6);
  EXPECT_EQ(cache->num_tokens(), 2);
}

TEST(LocalKvCacheTest, MatchesRecomputeWhateverThePassSplit) {
  const AttentionShape shape{3, 8, 2, 64};
  constexpr int kTokens = 23;
  const SequenceTensors tensors = RandomSequence(shape, kTokens, 11);
  absl::StatusOr<std::unique_ptr<RecomputeAttention>> recompute = RecomputeAttention::Create(shape);
  ASSERT_TRUE(recompute.ok());
  const std::vector<std::vector<float>> expected = RunPass(**recompute, shape, tensors, 0, kTokens);

  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 32);
  ASSERT_NE(cache, nullptr);
  int start = 0;
  for (int n : {5, 1, 1, 7, 1, 2, 1, 4, 1}) {
    SCOPED_TRACE(testing::Message() << "pass at " << start << " of " << n);
    const std::vector<std::vector<float>> outputs = RunPass(*cache, shape, tensors, start, n);
    for (int l = 0; l < shape.num_layers; ++l) {
      for (int64_t i = 0; i < n * shape.q_width(); ++i) {
        // NOTE: bit-identical, not merely close: both run CausalAttention on the same floats,
        // which is what keeps greedy tokens identical across the modes.
        ASSERT_EQ(outputs[l][i], expected[l][start * shape.q_width() + i])
            << "layer " << l << " element " << i;
      }
    }
    start += n;
  }
  EXPECT_EQ(start, kTokens);
  EXPECT_EQ(cache->num_tokens(), kTokens);
}

TEST(LocalKvCacheTest, ResourceExhaustedWhenFull) {
  const AttentionShape shape{2, 2, 1, 4};
  const SequenceTensors tensors = RandomSequence(shape, 6, 5);
  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 5);
  ASSERT_NE(cache, nullptr);
  RunPass(*cache, shape, tensors, 0, 3);

  const absl::Status status = cache->BeginStep(3, std::vector<int32_t>(3, 0)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("capacity of 5 tokens (max_tokens)"));
  EXPECT_EQ(cache->num_tokens(), 3);

  RunPass(*cache, shape, tensors, 3, 2);  // exactly full
  EXPECT_EQ(cache->num_tokens(), 5);
  EXPECT_EQ(cache->BeginStep(5, std::vector<int32_t>(1, 0)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(LocalKvCacheTest, ResetEmptiesAndReuseGivesTheSameOutputs) {
  const AttentionShape shape{2, 4, 2, 16};
  const SequenceTensors tensors = RandomSequence(shape, 9, 17);
  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 9);
  ASSERT_NE(cache, nullptr);
  RunPass(*cache, shape, tensors, 0, 4);
  const std::vector<std::vector<float>> first = RunPass(*cache, shape, tensors, 4, 5);
  const int64_t memory = cache->memory_bytes();

  cache->Reset();
  EXPECT_EQ(cache->num_tokens(), 0);
  EXPECT_EQ(cache->used_bytes(), 0);
  EXPECT_EQ(cache->memory_bytes(), memory);
  RunPass(*cache, shape, tensors, 0, 4);
  EXPECT_EQ(RunPass(*cache, shape, tensors, 4, 5), first);
}

TEST(LocalKvCacheTest, MemoryBytesFollowTheShape) {
  const AttentionShape shape{4, 8, 2, 64};
  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 300);
  ASSERT_NE(cache, nullptr);
  // K and V x 4 layers x 300 tokens x 2 heads x 64 x fp32.
  EXPECT_EQ(cache->memory_bytes(), int64_t{2} * 4 * 300 * 2 * 64 * 4);
  EXPECT_EQ(cache->used_bytes(), 0);
  RunPass(*cache, shape, RandomSequence(shape, 7, 1), 0, 7);
  EXPECT_EQ(cache->used_bytes(), int64_t{2} * 4 * 7 * 2 * 64 * 4);
  EXPECT_EQ(cache->max_tokens(), 300);
}

TEST(LocalKvCacheTest, AbandonedPassIsNotCommitted) {
  const AttentionShape shape{2, 2, 2, 4};
  const SequenceTensors tensors = RandomSequence(shape, 4, 3);
  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 8);
  ASSERT_NE(cache, nullptr);
  RunPass(*cache, shape, tensors, 0, 2);
  // A pass that stops after layer 0 changes nothing visible.
  ASSERT_TRUE(cache->BeginStep(2, std::vector<int32_t>(2, 0)).ok());
  std::vector<float> out(2 * shape.q_width());
  std::vector<float> garbage(2 * shape.kv_width(), 100.0f);
  ASSERT_TRUE(
      cache->Attend(0, std::vector<float>(out.size(), 1.0f), garbage, garbage, absl::MakeSpan(out))
          .ok());
  EXPECT_EQ(cache->num_tokens(), 2);
  EXPECT_EQ(cache->EndStep().code(), absl::StatusCode::kFailedPrecondition);

  std::unique_ptr<LocalKvCache> fresh = MakeCache(shape, 8);
  RunPass(*fresh, shape, tensors, 0, 2);
  EXPECT_EQ(RunPass(*cache, shape, tensors, 2, 2), RunPass(*fresh, shape, tensors, 2, 2));
}

TEST(LocalKvCacheTest, RejectsAPassAtTheWrongPosition) {
  const AttentionShape shape{1, 2, 1, 4};
  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 8);
  ASSERT_NE(cache, nullptr);
  RunPass(*cache, shape, RandomSequence(shape, 3, 2), 0, 3);
  for (int start : {0, 2, 4}) {
    const absl::Status status = cache->BeginStep(start, std::vector<int32_t>(1, 0)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(status.message(), HasSubstr("start_pos: the cache holds 3 tokens"));
  }
  EXPECT_EQ(cache->BeginStep(3, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LocalKvCacheTest, RejectsBadAttendArguments) {
  const AttentionShape shape{2, 4, 2, 8};
  std::unique_ptr<LocalKvCache> cache = MakeCache(shape, 8);
  ASSERT_NE(cache, nullptr);
  const std::vector<float> q(2 * 32, 1.0f), kv(2 * 16, 1.0f);
  std::vector<float> out(2 * 32);
  EXPECT_EQ(cache->Attend(0, q, kv, kv, absl::MakeSpan(out)).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(cache->BeginStep(0, std::vector<int32_t>(2, 0)).ok());
  absl::Status status =
      cache->Attend(0, q, kv, absl::MakeConstSpan(kv).subspan(1), absl::MakeSpan(out));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("v: expected 32 floats (2 tokens x 2 heads x 8), got 31"));
  status = cache->Attend(-1, q, kv, kv, absl::MakeSpan(out));
  EXPECT_THAT(status.message(), HasSubstr("layer: expected 0..1, got -1"));
  status = cache->Attend(1, q, kv, kv, absl::MakeSpan(out));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache->num_tokens(), 0);
}

TEST(LocalKvCacheTest, CreateRejectsBadSizes) {
  const AttentionShape shape{2, 4, 2, 8};
  for (int max_tokens : {0, -3}) {
    const absl::Status status = LocalKvCache::Create(shape, max_tokens).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("max_tokens: must be positive"));
  }
  EXPECT_THAT(LocalKvCache::Create({2, 4, 3, 8}, 8).status().message(), HasSubstr("num_kv_heads"));
  // 2 x 2^30 layers x 2^31 tokens x 2^30 floats overflows int64.
  const absl::Status overflow =
      LocalKvCache::Create({1 << 30, 1 << 30, 1 << 30, 1}, 2147483647).status();
  EXPECT_EQ(overflow.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(overflow.message(), HasSubstr("overflows"));
}

}  // namespace
}  // namespace kvtier
