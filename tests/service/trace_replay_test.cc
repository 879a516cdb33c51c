// The head of the Mooncake trace (testdata/, 300 requests) replayed through a real tier
// (LocalTier, 2 shards): each request a session of its prompt,
// matched against the cached prefixes, the rest prefilled, then closed. The replay is scaled
// down to keep it quick: each of the trace's 512-token hash ids becomes 8 tokens, so prefixes
// are shared exactly as in the trace. A sample of the requests (every 10th) has every output
// checked against dense attention over its whole prompt (PrefixKvConversation); the others
// run unchecked, for their effect on the cache.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <random>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/load/mooncake_trace.h"
#include "gtest/gtest.h"
#include "tests/service/prefix_kv_conversation.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

constexpr int kTokensPerHashId = 8;

// The request's prompt, `kTokensPerHashId` tokens per hash id, determined by the id.
std::vector<int32_t> ScaledTokens(const TraceRequest& request) {
  std::vector<int32_t> tokens;
  for (int64_t id : request.hash_ids) {
    std::mt19937_64 rng(static_cast<uint64_t>(id));
    for (int i = 0; i < kTokensPerHashId; ++i)
      tokens.push_back(static_cast<int32_t>(rng() % 100000));
  }
  return tokens;
}

// What a cache that never forgets holds of each request's prompt: the longest prefix of its
// hash ids seen before, in tokens, never its last block (the coordinator matches whole blocks
// of 4 tokens and never a prompt's last token).
int64_t UnboundedCachedTokens(const std::vector<TraceRequest>& trace) {
  std::set<std::vector<int64_t>> seen;
  int64_t cached = 0;
  for (const TraceRequest& request : trace) {
    const std::vector<int64_t>& ids = request.hash_ids;
    size_t matched = 0;
    while (matched < ids.size() &&
           seen.count(std::vector<int64_t>(ids.begin(), ids.begin() + matched + 1)) > 0) {
      ++matched;
    }
    const int64_t tokens = static_cast<int64_t>(ids.size()) * kTokensPerHashId;
    cached += std::min<int64_t>(static_cast<int64_t>(matched) * kTokensPerHashId, tokens - 4);
    for (size_t i = 1; i <= ids.size(); ++i) seen.insert({ids.begin(), ids.begin() + i});
  }
  return cached;
}

class TraceReplayTest : public testing::Test {
 protected:
  struct Totals {
    int64_t prompt_tokens = 0;
    int64_t cached_tokens = 0;
    v1::CacheCounters counters;
  };

  void SetUp() override {
    absl::StatusOr<std::vector<TraceRequest>> trace = ReadMooncakeTrace(KVTIER_TRACE_HEAD);
    ASSERT_TRUE(trace.ok()) << trace.status();
    ASSERT_EQ(trace->size(), 300u);
    trace_ = *std::move(trace);
    const uint64_t seed = FreshSeed();
    std::cout << "seed " << seed << "\n";
    rng_.seed(seed);
  }

  // Replays the trace through a tier of 2 shards whose model (2 layers, 2/4 heads, head_dim 8,
  // blocks of 4 tokens) has `num_blocks` blocks.
  void Replay(int num_blocks, Totals* totals) {
    LocalTierOptions options =
        FastTier(TestModel("m", 2, 4, /*shards=*/2, DType::kBF16, num_blocks, 8));
    absl::StatusOr<Tier> tier = StartTier(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    for (size_t i = 0; i < trace_.size(); ++i) {
      SCOPED_TRACE(absl::StrCat("request ", i));
      absl::StatusOr<std::unique_ptr<Session>> session =
          tier->client->OpenSession(TestModelId("m"), "trace");
      ASSERT_TRUE(session.ok()) << session.status();
      PrefixKvConversation conversation(*std::move(session));
      const std::vector<int32_t> prompt = ScaledTokens(trace_[i]);
      int32_t cached = 0;
      ASSERT_TRUE(conversation.Say(prompt, rng_, &cached, /*check=*/i % 10 == 0).ok());
      totals->prompt_tokens += static_cast<int64_t>(prompt.size());
      totals->cached_tokens += cached;
      ASSERT_TRUE(conversation.session().Close().ok());
    }
    absl::StatusOr<v1::GetStatsResponse> stats = tier->client->GetStats();
    ASSERT_TRUE(stats.ok());
    totals->counters = stats->models(0).cache();
    std::cout << num_blocks << " blocks: prompt tokens " << totals->prompt_tokens << ", cached "
              << totals->cached_tokens << ", blocks evicted " << totals->counters.blocks_evicted()
              << "\n";
    EXPECT_EQ(totals->counters.prompt_tokens(), totals->prompt_tokens);
    EXPECT_EQ(totals->counters.cached_tokens(), totals->cached_tokens);
  }

  std::vector<TraceRequest> trace_;
  std::mt19937_64 rng_;
};

// With room for everything, the tier finds exactly what a cache that never forgets holds.
TEST_F(TraceReplayTest, WithRoomForAllItMatchesEverySharedPrefix) {
  Totals totals;
  ASSERT_NO_FATAL_FAILURE(Replay(/*num_blocks=*/16000, &totals));
  EXPECT_EQ(totals.cached_tokens, UnboundedCachedTokens(trace_));
  EXPECT_EQ(totals.counters.blocks_evicted(), 0);
}

// A pool of a tenth of the replay's tokens evicts as it goes; what it still matches is right.
TEST_F(TraceReplayTest, UnderEvictionMatchedPrefixesStillGiveTheReference) {
  Totals totals;
  ASSERT_NO_FATAL_FAILURE(Replay(/*num_blocks=*/1500, &totals));
  EXPECT_GT(totals.counters.blocks_evicted(), 0);
  EXPECT_GT(totals.cached_tokens, 0);
  EXPECT_LT(totals.cached_tokens, UnboundedCachedTokens(trace_));
}

}  // namespace
}  // namespace kvtier::test
