// CausalAttention against the double-precision dense reference (cache/reference_attention.h)
// on fresh random inputs, across head groupings, head sizes off the vector width and query
// counts from decode to full prefill; and RecomputeAttention's argument and call-order checks.
#include "client/generate/recompute_attention.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "cache/kv/reference_attention.h"
#include "client/generate/layer_attention.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

std::vector<float> RandomFloats(int64_t count, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& x : values) x = normal(rng);
  return values;
}

struct Case {
  int num_q_heads;
  int num_kv_heads;
  int head_dim;
  int context_len;
  int num_queries;
};

TEST(CausalAttentionTest, MatchesDoubleReference) {
  std::mt19937_64 rng(7);
  const Case cases[] = {
      {1, 1, 2, 1, 1},   {1, 1, 16, 5, 5},   {4, 1, 64, 37, 1}, {8, 2, 64, 40, 40},
      {8, 2, 64, 40, 7}, {6, 3, 20, 13, 13}, {2, 2, 33, 9, 4},  {8, 8, 128, 70, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << "Hq=" << c.num_q_heads << " Hkv=" << c.num_kv_heads << " D=" << c.head_dim
                 << " C=" << c.context_len << " n=" << c.num_queries);
    const AttentionShape shape{1, c.num_q_heads, c.num_kv_heads, c.head_dim};
    const std::vector<float> q = RandomFloats(c.num_queries * shape.q_width(), rng);
    // Scaled up so the softmax is peaked as well as flat across the cases.
    std::vector<float> k = RandomFloats(c.context_len * shape.kv_width(), rng);
    for (float& x : k) x *= 2.0f;
    const std::vector<float> v = RandomFloats(c.context_len * shape.kv_width(), rng);
    std::vector<float> out(q.size(), NAN);

    CausalAttention(shape, c.context_len, q, k, v, absl::MakeSpan(out));

    const std::vector<double> expected =
        ReferenceAttention(ReferenceAttentionShape{c.context_len, c.num_queries, c.num_q_heads,
                                                   c.num_kv_heads, c.head_dim, 0.0},
                           q, k, v);
    ASSERT_EQ(out.size(), expected.size());
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_NEAR(out[i], expected[i], 1e-5 + 1e-5 * std::abs(expected[i])) << "at " << i;
    }
  }
}

TEST(CausalAttentionTest, FirstPositionReturnsItsValue) {
  // One visible token: the softmax weight is exactly 1.
  const AttentionShape shape{1, 4, 2, 8};
  std::mt19937_64 rng(3);
  const std::vector<float> q = RandomFloats(shape.q_width(), rng);
  const std::vector<float> k = RandomFloats(shape.kv_width(), rng);
  const std::vector<float> v = RandomFloats(shape.kv_width(), rng);
  std::vector<float> out(q.size());
  CausalAttention(shape, 1, q, k, v, absl::MakeSpan(out));
  for (int h = 0; h < 4; ++h) {
    for (int j = 0; j < 8; ++j) EXPECT_EQ(out[h * 8 + j], v[(h / 2) * 8 + j]);
  }
}

class RecomputeAttentionTest : public testing::Test {
 protected:
  // 2 layers, 4 query heads over 2 KV heads of 8.
  static constexpr AttentionShape kShape{2, 4, 2, 8};

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RecomputeAttention>> created =
        RecomputeAttention::Create(kShape);
    ASSERT_TRUE(created.ok()) << created.status();
    attention_ = *std::move(created);
  }

  // Tensors for n tokens.
  std::vector<float> Q(int n) const { return std::vector<float>(n * kShape.q_width(), 0.5f); }
  std::vector<float> Kv(int n) const { return std::vector<float>(n * kShape.kv_width(), 0.5f); }

  std::unique_ptr<RecomputeAttention> attention_;
  const std::vector<int32_t> tokens_ = {1, 2, 3};
};

TEST_F(RecomputeAttentionTest, RunsAPass) {
  ASSERT_TRUE(attention_->BeginStep(0, tokens_).ok());
  std::vector<float> out(Q(3).size());
  for (int layer = 0; layer < 2; ++layer) {
    ASSERT_TRUE(attention_->Attend(layer, Q(3), Kv(3), Kv(3), absl::MakeSpan(out)).ok());
  }
  EXPECT_TRUE(attention_->EndStep().ok());
  EXPECT_EQ(out[0], 0.5f);
}

TEST_F(RecomputeAttentionTest, RejectsAPassNotFromPositionZero) {
  const absl::Status status = attention_->BeginStep(3, tokens_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("start_pos"));
  EXPECT_EQ(attention_->BeginStep(0, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RecomputeAttentionTest, RejectsBadAttendArguments) {
  std::vector<float> out(Q(3).size());
  EXPECT_EQ(attention_->Attend(0, Q(3), Kv(3), Kv(3), absl::MakeSpan(out)).code(),
            absl::StatusCode::kFailedPrecondition);  // no pass
  ASSERT_TRUE(attention_->BeginStep(0, tokens_).ok());

  absl::Status status = attention_->Attend(0, Q(3), Kv(2), Kv(3), absl::MakeSpan(out));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("k: expected 48 floats (3 tokens x 2 heads x 8)"));
  status = attention_->Attend(0, Q(2), Kv(3), Kv(3), absl::MakeSpan(out));
  EXPECT_THAT(status.message(), HasSubstr("q: expected 96"));
  std::vector<float> short_out(out.size() - 1);
  status = attention_->Attend(0, Q(3), Kv(3), Kv(3), absl::MakeSpan(short_out));
  EXPECT_THAT(status.message(), HasSubstr("out: expected 96 floats"));
  status = attention_->Attend(2, Q(3), Kv(3), Kv(3), absl::MakeSpan(out));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("layer: expected 0..1, got 2"));

  // Layers in order only, and all of them before EndStep.
  status = attention_->Attend(1, Q(3), Kv(3), Kv(3), absl::MakeSpan(out));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(attention_->Attend(0, Q(3), Kv(3), Kv(3), absl::MakeSpan(out)).ok());
  status = attention_->EndStep();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("1 of 2 layers"));
}

TEST(RecomputeAttentionCreateTest, RejectsBadShapes) {
  const absl::Status status = RecomputeAttention::Create({2, 4, 3, 8}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("num_kv_heads"));
  EXPECT_THAT(RecomputeAttention::Create({0, 4, 2, 8}).status().message(), HasSubstr("num_layers"));
  EXPECT_THAT(RecomputeAttention::Create({1, 4, 2, 0}).status().message(), HasSubstr("head_dim"));
}

}  // namespace
}  // namespace kvtier
