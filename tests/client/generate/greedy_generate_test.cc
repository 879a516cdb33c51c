// Greedy generation: the recompute and local-cache modes produce identical tokens across
// seeds and prompts, a reset cache reproduces them, the cache needs exactly prompt + N - 1
// tokens, a generation continued after what the cache holds (the next turn) equals one from
// scratch, and bad arguments are rejected. Also GreedyToken's tie and NaN rules.
#include "client/generate/greedy_generate.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/generate/local_kv_cache.h"
#include "client/generate/toy_transformer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<ToyTransformer> MakeModel(const ToyTransformerConfig& config) {
  absl::StatusOr<std::unique_ptr<ToyTransformer>> model = ToyTransformer::Create(config);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

std::unique_ptr<LocalKvCache> MakeCache(const ToyTransformer& model, int max_tokens) {
  return *LocalKvCache::Create(model.attention_shape(), max_tokens);
}

TEST(GreedyTokenTest, LowestIndexWinsTiesAndNanNever) {
  EXPECT_EQ(GreedyToken(std::vector<float>{0.5f, 2.0f, -1.0f, 2.0f}), 1);
  EXPECT_EQ(GreedyToken(std::vector<float>{-3.0f, -2.0f, -2.0f}), 1);
  EXPECT_EQ(GreedyToken(std::vector<float>{NAN, -5.0f, NAN, -4.0f}), 3);
  EXPECT_EQ(GreedyToken(std::vector<float>{7.0f}), 0);
  EXPECT_EQ(GreedyToken(std::vector<float>{NAN}), -1);
  EXPECT_EQ(GreedyToken({}), -1);
}

TEST(GreedyGenerateTest, RecomputeAndLocalCacheGiveTheSameTokens) {
  struct Case {
    uint64_t seed;
    std::vector<int32_t> prompt;
  };
  const Case cases[] = {{1, {1, 2, 3, 4, 5, 6, 7, 8}}, {2, {42}}, {3, {511, 0, 256, 9, 9}}};
  std::vector<std::vector<int32_t>> all_tokens;
  for (const Case& c : cases) {
    ToyTransformerConfig config;  // the default model, the one kvtier-generate runs
    config.seed = c.seed;
    std::unique_ptr<ToyTransformer> model = MakeModel(config);
    ASSERT_NE(model, nullptr);
    constexpr int kTokens = 12;
    absl::StatusOr<GenerateResult> recomputed = GenerateRecompute(*model, c.prompt, kTokens);
    ASSERT_TRUE(recomputed.ok()) << recomputed.status();
    std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 64);
    absl::StatusOr<GenerateResult> cached = GenerateCached(*model, c.prompt, kTokens, cache.get());
    ASSERT_TRUE(cached.ok()) << cached.status();

    EXPECT_EQ(recomputed->tokens, cached->tokens) << "seed " << c.seed;
    ASSERT_EQ(cached->tokens.size(), static_cast<size_t>(kTokens));
    for (int32_t token : cached->tokens) {
      EXPECT_GE(token, 0);
      EXPECT_LT(token, config.vocab_size);
    }
    EXPECT_EQ(cache->num_tokens(), static_cast<int>(c.prompt.size()) + kTokens - 1);
    EXPECT_GT(recomputed->elapsed, absl::ZeroDuration());
    EXPECT_GT(cached->elapsed, absl::ZeroDuration());
    all_tokens.push_back(cached->tokens);
  }
  // Different seeds and prompts are different generations.
  EXPECT_NE(all_tokens[0], all_tokens[1]);
  EXPECT_NE(all_tokens[1], all_tokens[2]);
}

TEST(GreedyGenerateTest, ResetCacheGivesTheSameTokensAgain) {
  std::unique_ptr<ToyTransformer> model = MakeModel(ToyTransformerConfig{});
  const std::vector<int32_t> prompt = {5, 4, 3};
  std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 32);
  absl::StatusOr<GenerateResult> first = GenerateCached(*model, prompt, 10, cache.get());
  ASSERT_TRUE(first.ok()) << first.status();

  // A used cache is refused: the prefill starts at position 0.
  const absl::Status refused = GenerateCached(*model, prompt, 10, cache.get()).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);

  cache->Reset();
  absl::StatusOr<GenerateResult> second = GenerateCached(*model, prompt, 10, cache.get());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->tokens, second->tokens);
}

TEST(GreedyGenerateTest, CacheNeedsPromptPlusTokensMinusOne) {
  std::unique_ptr<ToyTransformer> model = MakeModel(ToyTransformerConfig{});
  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  // 4 prompt tokens + 6 generated, the last never fed back: 9 positions.
  std::unique_ptr<LocalKvCache> small = MakeCache(*model, 8);
  const absl::Status status = GenerateCached(*model, prompt, 6, small.get()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("capacity of 8 tokens"));

  std::unique_ptr<LocalKvCache> exact = MakeCache(*model, 9);
  EXPECT_TRUE(GenerateCached(*model, prompt, 6, exact.get()).ok());
}

TEST(GreedyGenerateTest, ContinuingAfterTheCacheEqualsGeneratingFromScratch) {
  std::unique_ptr<ToyTransformer> model = MakeModel(ToyTransformerConfig{});
  const std::vector<int32_t> prompt = {9, 8, 7, 6, 5};
  const std::vector<int32_t> message = {40, 41, 42};
  std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 32);
  absl::StatusOr<GenerateResult> first = GenerateCached(*model, prompt, 4, cache.get());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GT(first->first_token, absl::ZeroDuration());
  EXPECT_LE(first->first_token, first->elapsed);

  // The next turn: the reply's last token, never fed back, then the message.
  std::vector<int32_t> next = {first->tokens.back()};
  next.insert(next.end(), message.begin(), message.end());
  absl::StatusOr<GenerateResult> second =
      ContinueCached(*model, next, cache->num_tokens(), 4, cache.get());
  ASSERT_TRUE(second.ok()) << second.status();

  std::vector<int32_t> conversation = prompt;
  conversation.insert(conversation.end(), first->tokens.begin(), first->tokens.end());
  conversation.insert(conversation.end(), message.begin(), message.end());
  absl::StatusOr<GenerateResult> scratch = GenerateRecompute(*model, conversation, 4);
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  EXPECT_EQ(second->tokens, scratch->tokens);

  EXPECT_EQ(ContinueCached(*model, next, 3, 1, cache.get()).status().code(),
            absl::StatusCode::kFailedPrecondition);  // not what the cache holds
  EXPECT_THAT(ContinueCached(*model, next, -1, 1, cache.get()).status().message(),
              HasSubstr("start_pos: must be >= 0, got -1"));
  EXPECT_THAT(ContinueCached(*model, {}, 0, 1, cache.get()).status().message(),
              HasSubstr("tokens: empty"));
}

TEST(GreedyGenerateTest, RejectsBadArguments) {
  std::unique_ptr<ToyTransformer> model = MakeModel(ToyTransformerConfig{});
  std::unique_ptr<LocalKvCache> cache = MakeCache(*model, 8);
  const std::vector<int32_t> bad_prompt = {1, 2, 512};
  absl::Status status = GenerateRecompute(*model, bad_prompt, 0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("prompt[2]: expected a token id in [0, 512), got 512"));
  EXPECT_THAT(GenerateCached(*model, bad_prompt, 2, cache.get()).status().message(),
              HasSubstr("prompt[2]"));
  EXPECT_THAT(GenerateRecompute(*model, {}, 2).status().message(), HasSubstr("prompt: empty"));
  const std::vector<int32_t> prompt = {1};
  EXPECT_THAT(GenerateCached(*model, prompt, -1, cache.get()).status().message(),
              HasSubstr("num_tokens"));
  EXPECT_THAT(GenerateCached(*model, prompt, 2, nullptr).status().message(), HasSubstr("cache"));
  EXPECT_EQ(cache->num_tokens(), 0);

  absl::StatusOr<GenerateResult> none = GenerateRecompute(*model, prompt, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(none->tokens, ElementsAre());
}

}  // namespace
}  // namespace kvtier
