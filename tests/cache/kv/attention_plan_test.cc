// AttentionPlan on fresh random batches: units and merges cover every sequence's KV heads,
// tiles and splits exactly once, in the documented order; head groups cover the KV heads
// exactly once, within the cap; splits are whole blocks and cover the context; automatic
// grouping and splitting stop at the target and the minimum split.
#include "cache/kv/attention_plan.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

struct RandomBatch {
  std::vector<std::vector<int32_t>> tables;
  std::vector<SequenceLayout> layouts;
};

RandomBatch MakeBatch(int sequences, int block_size, std::mt19937_64& rng, int min_context = 1) {
  RandomBatch batch;
  batch.tables.resize(sequences);
  for (int s = 0; s < sequences; ++s) {
    const int context = std::uniform_int_distribution<int>(min_context, 5000)(rng);
    const int queries = std::uniform_int_distribution<int>(1, std::min(context, 40))(rng);
    batch.tables[s].assign((context + block_size - 1) / block_size, 0);
    batch.layouts.push_back({batch.tables[s], context, queries});
  }
  return batch;
}

void ExpectCovers(const AttentionPlan& plan, const RandomBatch& batch, int num_kv_heads,
                  int block_size) {
  ASSERT_GT(plan.split_tokens, 0);
  EXPECT_EQ(plan.split_tokens % block_size, 0);
  ASSERT_GE(plan.kv_heads_per_unit, 1);
  int covered_heads = 0;
  for (int g = 0; g < plan.head_groups; ++g) {
    EXPECT_EQ(plan.FirstKvHead(g), covered_heads) << "head group " << g;
    EXPECT_GE(plan.KvHeadsOf(g, num_kv_heads), 1) << "head group " << g;
    covered_heads += plan.KvHeadsOf(g, num_kv_heads);
  }
  EXPECT_EQ(covered_heads, num_kv_heads);
  int64_t units = 0;
  int64_t merges = 0;
  int64_t queries = 0;
  for (size_t s = 0; s < plan.sequences.size(); ++s) {
    SCOPED_TRACE(absl::StrCat("sequence ", s));
    const SequencePlan& p = plan.sequences[s];
    const SequenceLayout& layout = batch.layouts[s];
    EXPECT_EQ(p.first_query, queries);
    EXPECT_EQ(p.rows, layout.num_queries * plan.group);
    EXPECT_EQ(p.tiles, (p.rows + plan.tile_rows - 1) / plan.tile_rows);
    // Splits cover the context, and none is empty.
    EXPECT_GE(int64_t{p.splits} * plan.split_tokens, layout.context_len);
    EXPECT_LT(int64_t{p.splits - 1} * plan.split_tokens, layout.context_len);
    EXPECT_EQ(p.first_unit, units);
    const int64_t own_units = int64_t{plan.head_groups} * p.tiles * p.splits;
    for (int64_t u = p.first_unit; u < p.first_unit + own_units; ++u) {
      ASSERT_EQ(plan.SequenceOfUnit(u), static_cast<int>(s)) << "unit " << u;
    }
    if (p.splits > 1) {
      EXPECT_EQ(p.first_merge, merges);
      const int64_t own_merges = int64_t{plan.head_groups} * p.tiles;
      for (int64_t m = p.first_merge; m < p.first_merge + own_merges; ++m) {
        ASSERT_EQ(plan.SequenceOfMerge(m), static_cast<int>(s)) << "merge " << m;
      }
      merges += own_merges;
    }
    units += own_units;
    queries += layout.num_queries;
  }
  EXPECT_EQ(plan.num_units, units);
  EXPECT_EQ(plan.num_merges, merges);
}

TEST(AttentionPlanTest, CoversEveryUnitAndMergeExactlyOnce) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 200; ++trial) {
    const int block_size = std::uniform_int_distribution<int>(1, 128)(rng);
    const int num_kv_heads = std::uniform_int_distribution<int>(1, 16)(rng);
    const int group = std::uniform_int_distribution<int>(1, 8)(rng);
    const RandomBatch batch =
        MakeBatch(std::uniform_int_distribution<int>(1, 20)(rng), block_size, rng);
    AttentionParams params;
    params.num_q_heads = num_kv_heads * group;
    if (trial % 3 == 0) params.kv_split_tokens = std::uniform_int_distribution<int>(1, 900)(rng);
    if (trial % 4 == 0) params.kv_heads_per_unit = std::uniform_int_distribution<int>(1, 16)(rng);
    AttentionPlanOptions options;
    options.tile_rows = 1 << std::uniform_int_distribution<int>(0, 3)(rng);
    options.target_units = std::uniform_int_distribution<int>(0, 2000)(rng);
    options.max_kv_heads_per_unit = std::uniform_int_distribution<int>(1, 16)(rng);
    SCOPED_TRACE(absl::StrCat("trial ", trial, ": block ", block_size, ", kv heads ", num_kv_heads,
                              ", group ", group, ", kv_split_tokens ", params.kv_split_tokens,
                              ", kv_heads_per_unit ", params.kv_heads_per_unit, ", target ",
                              options.target_units, ", max heads ",
                              options.max_kv_heads_per_unit));
    const AttentionPlan plan =
        PlanAttention(batch.layouts, params, num_kv_heads, block_size, options);
    EXPECT_EQ(plan.group, group);
    EXPECT_EQ(plan.tile_rows, options.tile_rows);
    EXPECT_LE(plan.kv_heads_per_unit, std::min(options.max_kv_heads_per_unit, num_kv_heads));
    if (params.kv_heads_per_unit > 0) {
      EXPECT_EQ(plan.kv_heads_per_unit, std::min({params.kv_heads_per_unit,
                                                  options.max_kv_heads_per_unit, num_kv_heads}));
    }
    ASSERT_NO_FATAL_FAILURE(ExpectCovers(plan, batch, num_kv_heads, block_size));
    if (params.kv_split_tokens > 0) {
      // Asked-for splits: whole blocks of at least kv_split_tokens (fewer tokens only when
      // that still leaves every sequence in one split).
      const int64_t asked = (params.kv_split_tokens + block_size - 1) / block_size * block_size;
      for (size_t s = 0; s < batch.layouts.size(); ++s) {
        EXPECT_EQ(plan.sequences[s].splits, (batch.layouts[s].context_len + asked - 1) / asked)
            << "sequence " << s;
      }
    }
  }
}

TEST(AttentionPlanTest, SplitsOnlyBelowTheTargetAndNeverBelowTheMinimum) {
  std::mt19937_64 rng(std::random_device{}());
  // Contexts long enough that the minimum split, not the context, bounds the split.
  const RandomBatch batch = MakeBatch(4, 16, rng, /*min_context=*/1024);
  AttentionParams params;
  params.num_q_heads = 8;  // 2 KV heads, group 4
  AttentionPlanOptions options;
  options.tile_rows = 4;
  const int64_t unsplit = PlanAttention(batch.layouts, params, 2, 16, options).num_units;

  options.target_units = unsplit;  // already enough units
  AttentionPlan plan = PlanAttention(batch.layouts, params, 2, 16, options);
  EXPECT_EQ(plan.num_merges, 0);
  EXPECT_EQ(plan.num_units, unsplit);

  options.target_units = 1000 * unsplit;  // wants far more than the minimum split allows
  plan = PlanAttention(batch.layouts, params, 2, 16, options);
  EXPECT_GE(plan.split_tokens, options.min_split_tokens);
  EXPECT_LT(plan.split_tokens, options.min_split_tokens + 16);
  ASSERT_NO_FATAL_FAILURE(ExpectCovers(plan, batch, 2, 16));
}

TEST(AttentionPlanTest, GroupsKvHeadsEvenlyWhileUnitsReachTheTarget) {
  std::mt19937_64 rng(std::random_device{}());
  const RandomBatch batch = MakeBatch(3, 16, rng);  // decode and prefill rows, 3 sequences
  AttentionPlanOptions options;
  options.tile_rows = 4;
  options.max_kv_heads_per_unit = 8;
  options.min_split_tokens = 1 << 20;  // no context is split: heads alone give the units
  for (int num_kv_heads : {1, 3, 8, 12, 16}) {
    SCOPED_TRACE(absl::StrCat(num_kv_heads, " KV heads"));
    AttentionParams params;
    params.num_q_heads = 4 * num_kv_heads;
    options.target_units = 0;  // one thread: as few groups as the cap allows, evened out
    AttentionPlan plan = PlanAttention(batch.layouts, params, num_kv_heads, 16, options);
    const int groups = (num_kv_heads + 7) / 8;
    EXPECT_EQ(plan.head_groups, groups);
    EXPECT_EQ(plan.kv_heads_per_unit, (num_kv_heads + groups - 1) / groups);
    EXPECT_EQ(plan.num_merges, 0);

    // Wanting a unit per head and tile keeps one head per unit, and splits no further.
    int64_t tiles = 0;
    for (const SequencePlan& p : plan.sequences) tiles += p.tiles;
    options.target_units = tiles * num_kv_heads;
    plan = PlanAttention(batch.layouts, params, num_kv_heads, 16, options);
    EXPECT_EQ(plan.kv_heads_per_unit, 1);
    EXPECT_EQ(plan.num_units, options.target_units);
    EXPECT_EQ(plan.num_merges, 0);
    ASSERT_NO_FATAL_FAILURE(ExpectCovers(plan, batch, num_kv_heads, 16));

    // Halfway: the fewest groups that still leave the target.
    options.target_units = tiles * ((num_kv_heads + 1) / 2);
    plan = PlanAttention(batch.layouts, params, num_kv_heads, 16, options);
    EXPECT_GE(plan.head_groups * tiles, options.target_units);
    for (int heads = plan.kv_heads_per_unit + 1; heads <= std::min(8, num_kv_heads); ++heads) {
      const int fewer = (num_kv_heads + heads - 1) / heads;
      if (fewer < plan.head_groups) {
        EXPECT_LT(fewer * tiles, options.target_units) << heads << " heads a unit";
      }
    }
    ASSERT_NO_FATAL_FAILURE(ExpectCovers(plan, batch, num_kv_heads, 16));
    options.target_units = 0;
  }
}

TEST(AttentionPlanTest, KeepsHeadsGroupedWhereSplittingGivesTheUnits) {
  std::mt19937_64 rng(std::random_device{}());
  AttentionParams params;
  params.num_q_heads = 32;  // 8 KV heads, group 4
  AttentionPlanOptions options;
  options.tile_rows = 4;
  options.max_kv_heads_per_unit = 8;
  options.target_units = 8;
  // One decode over a long context: one group of all 8 heads, its context split 8 ways.
  RandomBatch batch = MakeBatch(1, 16, rng, /*min_context=*/4096);
  batch.layouts[0].num_queries = 1;
  AttentionPlan plan = PlanAttention(batch.layouts, params, 8, 16, options);
  EXPECT_EQ(plan.kv_heads_per_unit, 8);
  EXPECT_EQ(plan.num_units, 8);
  ASSERT_NO_FATAL_FAILURE(ExpectCovers(plan, batch, 8, 16));
  // A context of 2 minimum splits: 4 groups of 2 heads, each split in 2.
  batch.tables[0].assign(32, 0);
  batch.layouts[0] = {batch.tables[0], 2 * options.min_split_tokens, 1};
  plan = PlanAttention(batch.layouts, params, 8, 16, options);
  EXPECT_EQ(plan.kv_heads_per_unit, 2);
  EXPECT_EQ(plan.num_units, 8);
  ASSERT_NO_FATAL_FAILURE(ExpectCovers(plan, batch, 8, 16));
}

}  // namespace
}  // namespace kvtier
