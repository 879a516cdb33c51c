#include "cache/kv/attention_plan.h"

#include <algorithm>

namespace kvtier {
namespace {

int RoundUp(int64_t value, int multiple) {
  return static_cast<int>((value + multiple - 1) / multiple * multiple);
}

int ChooseSplitTokens(absl::Span<const SequenceLayout> sequences, const AttentionParams& params,
                      int64_t unsplit_units, int block_size, const AttentionPlanOptions& options) {
  int max_context = 0;
  for (const SequenceLayout& s : sequences) max_context = std::max(max_context, s.context_len);
  const int no_split = RoundUp(std::max(max_context, 1), block_size);
  if (params.kv_split_tokens > 0) {
    return RoundUp(std::min(params.kv_split_tokens, no_split), block_size);
  }
  if (unsplit_units == 0 || unsplit_units >= options.target_units) return no_split;
  const int64_t splits = (options.target_units + unsplit_units - 1) / unsplit_units;
  const int64_t tokens = (max_context + splits - 1) / splits;
  return std::min(no_split,
                  RoundUp(std::max<int64_t>(options.min_split_tokens, tokens), block_size));
}

int CeilDiv(int value, int divisor) { return (value + divisor - 1) / divisor; }

// The most splits automatic splitting could give the longest context (1 when it may not split).
int64_t MaxSplits(absl::Span<const SequenceLayout> sequences, const AttentionParams& params,
                  int block_size, const AttentionPlanOptions& options) {
  if (params.kv_split_tokens > 0) return 1;
  int max_context = 0;
  for (const SequenceLayout& s : sequences) max_context = std::max(max_context, s.context_len);
  const int split = RoundUp(std::max(options.min_split_tokens, 1), block_size);
  return std::max(1, CeilDiv(max_context, split));
}

int ChooseKvHeadsPerUnit(absl::Span<const SequenceLayout> sequences,
                         const AttentionParams& params, int num_kv_heads, int64_t tiles,
                         int block_size, const AttentionPlanOptions& options) {
  const int cap = std::max(1, std::min(options.max_kv_heads_per_unit, num_kv_heads));
  if (params.kv_heads_per_unit > 0) return std::min(params.kv_heads_per_unit, cap);
  const int64_t max_splits = MaxSplits(sequences, params, block_size, options);
  for (int heads = cap; heads > 1; --heads) {
    const int groups = CeilDiv(num_kv_heads, heads);
    if (groups * tiles * max_splits >= options.target_units) {
      return CeilDiv(num_kv_heads, groups);
    }
  }
  return 1;
}

}  // namespace

int AttentionPlan::KvHeadsOf(int head_group, int num_kv_heads) const {
  return std::min(kv_heads_per_unit, num_kv_heads - FirstKvHead(head_group));
}

int AttentionPlan::SequenceOfUnit(int64_t unit) const {
  auto it = std::upper_bound(sequences.begin(), sequences.end(), unit,
                             [](int64_t u, const SequencePlan& p) { return u < p.first_unit; });
  return static_cast<int>(it - sequences.begin()) - 1;
}

int AttentionPlan::SequenceOfMerge(int64_t merge) const {
  // Unsplit sequences take no merges, so several may share a first_merge: the last sequence
  // starting at or before `merge` is the split one that holds it.
  auto it = std::upper_bound(sequences.begin(), sequences.end(), merge,
                             [](int64_t m, const SequencePlan& p) { return m < p.first_merge; });
  return static_cast<int>(it - sequences.begin()) - 1;
}

AttentionPlan PlanAttention(absl::Span<const SequenceLayout> sequences,
                            const AttentionParams& params, int num_kv_heads, int block_size,
                            const AttentionPlanOptions& options) {
  AttentionPlan plan;
  plan.group = params.num_q_heads / num_kv_heads;
  plan.tile_rows = options.tile_rows;
  plan.sequences.resize(sequences.size());
  int64_t tiles = 0;
  int64_t first_query = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    SequencePlan& p = plan.sequences[s];
    p.first_query = first_query;
    p.rows = sequences[s].num_queries * plan.group;
    p.tiles = (p.rows + plan.tile_rows - 1) / plan.tile_rows;
    first_query += sequences[s].num_queries;
    tiles += p.tiles;
  }
  plan.kv_heads_per_unit =
      ChooseKvHeadsPerUnit(sequences, params, num_kv_heads, tiles, block_size, options);
  plan.head_groups = CeilDiv(num_kv_heads, plan.kv_heads_per_unit);
  const int64_t unsplit_units = plan.head_groups * tiles;
  plan.split_tokens = ChooseSplitTokens(sequences, params, unsplit_units, block_size, options);
  for (size_t s = 0; s < sequences.size(); ++s) {
    SequencePlan& p = plan.sequences[s];
    p.splits = std::max<int>(
        1, (sequences[s].context_len + int64_t{plan.split_tokens} - 1) / plan.split_tokens);
    p.first_unit = plan.num_units;
    p.first_merge = plan.num_merges;
    plan.num_units += int64_t{plan.head_groups} * p.tiles * p.splits;
    if (p.splits > 1) plan.num_merges += int64_t{plan.head_groups} * p.tiles;
  }
  return plan;
}

}  // namespace kvtier
