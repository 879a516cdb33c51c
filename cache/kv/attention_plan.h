// AttentionPlan: how a batch of paged attention (attention.h) is cut into units of parallel
// work, the same way for every backend.
//
// A unit is one tile of query rows of one sequence, for a group of consecutive KV heads, over
// one split of the sequence's context. A sequence's rows are its n new tokens times the G query
// heads of a GQA group, token-major (row = token * G + head within the group), so a tile of
// tile_rows rows reads one KV head: each K/V block is loaded once for the whole group. A unit
// runs its tile for each of its kv_heads_per_unit heads (the last group of a sequence may hold
// fewer), block by block: the heads of a block lie next to each other in the pool, so a unit of
// several heads reads K and V in runs of that many heads' blocks. Units are numbered sequence
// by sequence, [head_group][tile][split] within one.
//
// A sequence whose context spans several splits (split_tokens each, whole blocks) leaves one
// online-softmax state per unit and head, and a merge per (head_group, tile) combines its
// splits exactly; merges are numbered like units, without the split.
//
// Plain data; PlanAttention is a pure function.
#ifndef KVTIER_CACHE_KV_ATTENTION_PLAN_H_
#define KVTIER_CACHE_KV_ATTENTION_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "cache/kv/attention.h"

namespace kvtier {

struct SequencePlan {
  int64_t first_query = 0;  // index of its first query token in q and out
  int rows = 0;             // query rows per KV head: n * G
  int tiles = 0;            // ceil(rows / tile_rows)
  int splits = 1;           // KV splits of its context
  int64_t first_unit = 0;
  int64_t first_merge = 0;  // meaningful when splits > 1
};

struct AttentionPlan {
  int group = 1;  // G
  int tile_rows = 1;
  int kv_heads_per_unit = 1;
  int head_groups = 0;  // ceil(num_kv_heads / kv_heads_per_unit)
  int split_tokens = 0;  // context tokens per split, a multiple of the block size
  std::vector<SequencePlan> sequences;
  int64_t num_units = 0;
  int64_t num_merges = 0;  // (head_group, tile) pairs of split sequences

  // The sequence that unit `unit` (or merge `merge`) belongs to.
  int SequenceOfUnit(int64_t unit) const;
  int SequenceOfMerge(int64_t merge) const;
  // The first KV head of a head group, and how many heads it holds.
  int FirstKvHead(int head_group) const { return head_group * kv_heads_per_unit; }
  int KvHeadsOf(int head_group, int num_kv_heads) const;
};

struct AttentionPlanOptions {
  int tile_rows = 1;
  // Units the backend can run at once. A batch with fewer unsplit units has its contexts split
  // until about this many exist; 0 never splits unless params.kv_split_tokens asks to.
  int64_t target_units = 0;
  // The most KV heads one unit may cover. The plan groups as many heads as still leaves
  // target_units units once the longest context is split as far as min_split_tokens allows,
  // in groups as even as the head count allows, then splits contexts as it needs;
  // params.kv_heads_per_unit asks for a size below this cap.
  int max_kv_heads_per_unit = 1;
  // With automatic splitting a split covers at least this much context: below it, the merge
  // costs more than the parallelism buys.
  int min_split_tokens = 256;
};

// `sequences` and `params` must have passed ValidateAttentionBatch.
AttentionPlan PlanAttention(absl::Span<const SequenceLayout> sequences,
                            const AttentionParams& params, int num_kv_heads, int block_size,
                            const AttentionPlanOptions& options);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_ATTENTION_PLAN_H_
