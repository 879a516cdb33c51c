#include "cache/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/attention_tile.h"
#include "cache/thread_pool.h"

namespace kvtier {
namespace {

using attention_internal::kMaxBlockSize;
using attention_internal::kMaxHeadDim;
using attention_internal::kTileRows;
using attention_internal::TileKernel;
using attention_internal::TileTask;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// With auto splitting, a split covers at least this much context: below it the merge and the
// lost prefetch distance cost more than the parallelism buys.
constexpr int kMinSplitTokens = 256;

// Where one sequence's work starts in the flat list of units, and how it is cut.
struct SequencePlan {
  int64_t first_query = 0;  // index of its first query row in q and out
  int rows = 0;             // query rows per KV head: n * G
  int tiles = 0;            // ceil(rows / kTileRows)
  int splits = 1;           // KV splits of its context
  int64_t first_unit = 0;   // units: [kv_head][tile][split]
};

// The online-softmax state of one tile over one split.
struct TileState {
  float acc[kTileRows * kMaxHeadDim];
  float max[kTileRows];
  float sum[kTileRows];
};

int RoundUp(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

int ChooseSplitTokens(absl::Span<const SequenceLayout> sequences, const AttentionParams& params,
                      int64_t unsplit_units, int block_size, int num_threads) {
  if (params.kv_split_tokens > 0) return RoundUp(params.kv_split_tokens, block_size);
  constexpr int kNoSplit = std::numeric_limits<int>::max();
  const int64_t target_units = 4 * int64_t{num_threads};
  if (num_threads <= 1 || unsplit_units >= target_units) return kNoSplit;
  int max_context = 0;
  for (const SequenceLayout& s : sequences) max_context = std::max(max_context, s.context_len);
  const int64_t splits = (target_units + unsplit_units - 1) / unsplit_units;
  const int tokens = static_cast<int>((max_context + splits - 1) / splits);
  return RoundUp(std::max(kMinSplitTokens, tokens), block_size);
}

TileKernel SelectTileKernel(CpuIsa isa, DType dtype, int head_dim) {
  TileKernel kernel = nullptr;
  if (isa >= CpuIsa::kAvx512) kernel = attention_internal::Avx512TileKernel(dtype, head_dim);
  if (kernel == nullptr && isa >= CpuIsa::kAvx2) {
    kernel = attention_internal::Avx2TileKernel(dtype, head_dim);
  }
  return kernel != nullptr ? kernel : attention_internal::PortableTileKernel(dtype);
}

}  // namespace

int64_t TotalQueries(absl::Span<const SequenceLayout> sequences) {
  int64_t total = 0;
  for (const SequenceLayout& s : sequences) total += s.num_queries;
  return total;
}

absl::Status ValidateAttentionBatch(absl::Span<const SequenceLayout> sequences,
                                    const AttentionParams& params, int num_kv_heads,
                                    int block_size, int num_blocks) {
  if (params.num_q_heads <= 0 || params.num_q_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_q_heads: expected a positive multiple of the ", num_kv_heads,
                     " KV heads held, got ", params.num_q_heads));
  }
  if (!std::isfinite(params.scale) || params.scale < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale: expected a finite value >= 0, got ", params.scale));
  }
  if (params.kv_split_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_split_tokens: expected >= 0, got ", params.kv_split_tokens));
  }
  for (size_t i = 0; i < sequences.size(); ++i) {
    const SequenceLayout& s = sequences[i];
    if (s.num_queries < 1 || s.num_queries > s.context_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequences[", i, "].num_queries: expected 1..context_len (",
                       s.context_len, "), got ", s.num_queries));
    }
    const int64_t blocks_needed = (int64_t{s.context_len} + block_size - 1) / block_size;
    if (static_cast<int64_t>(s.block_table.size()) < blocks_needed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequences[", i, "].context_len: ", s.context_len, " tokens need ", blocks_needed,
          " blocks of ", block_size, ", block_table has ", s.block_table.size()));
    }
    for (size_t j = 0; j < s.block_table.size(); ++j) {
      if (s.block_table[j] < 0 || s.block_table[j] >= num_blocks) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequences[", i, "].block_table[", j, "]: block id ", s.block_table[j],
                         " out of range [0, ", num_blocks, ")"));
      }
    }
  }
  return absl::OkStatus();
}

void PagedAttentionCpu(const PagedKvLayer& kv, absl::Span<const SequenceLayout> sequences,
                       const AttentionParams& params, const void* q, void* out,
                       ThreadPool* threads, CpuIsa isa) {
  const int d = kv.head_dim;
  const int group = params.num_q_heads / kv.num_kv_heads;
  const float scale = (params.scale != 0.0f ? params.scale : 1.0f / std::sqrt(float(d))) * kLog2e;
  const TileKernel kernel = SelectTileKernel(isa, kv.dtype, d);

  std::vector<SequencePlan> plans(sequences.size());
  int64_t unsplit_units = 0;
  int64_t first_query = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    plans[s].first_query = first_query;
    plans[s].rows = sequences[s].num_queries * group;
    plans[s].tiles = (plans[s].rows + kTileRows - 1) / kTileRows;
    first_query += sequences[s].num_queries;
    unsplit_units += int64_t{kv.num_kv_heads} * plans[s].tiles;
  }
  const int num_threads = threads != nullptr ? threads->num_threads() : 1;
  const int split_tokens =
      ChooseSplitTokens(sequences, params, unsplit_units, kv.block_size, num_threads);
  int64_t num_units = 0;
  bool any_split = false;
  for (size_t s = 0; s < sequences.size(); ++s) {
    plans[s].splits = (sequences[s].context_len + int64_t{split_tokens} - 1) / split_tokens;
    plans[s].first_unit = num_units;
    num_units += int64_t{kv.num_kv_heads} * plans[s].tiles * plans[s].splits;
    any_split |= plans[s].splits > 1;
  }
  // Split units leave their state here for the merge; unsplit ones write out directly. Left
  // uninitialized: every unit sets its own state before use.
  std::unique_ptr<TileState[]> partials(any_split ? new TileState[num_units] : nullptr);

  // Element offset in q and out of a query row of a sequence's KV head; rows are token-major:
  // row = query token * G + query head within the group.
  auto row_query_index = [&](const SequencePlan& plan, int kv_head, int row) {
    const int64_t token = plan.first_query + row / group;
    return (token * params.num_q_heads + int64_t{kv_head} * group + row % group) * d;
  };
  auto write_rows = [&](const SequencePlan& plan, int kv_head, int tile, const TileState& state) {
    for (int r = 0; r < kTileRows; ++r) {
      const int row = tile * kTileRows + r;
      if (row >= plan.rows) break;
      const int64_t base = row_query_index(plan, kv_head, row);
      StoreRowFromFloat(kv.dtype, &state.acc[r * d], 1.0f / state.sum[r], out, base, d);
    }
  };

  auto run_unit = [&](int64_t unit) {
    const size_t s =
        std::upper_bound(plans.begin(), plans.end(), unit,
                         [](int64_t u, const SequencePlan& p) { return u < p.first_unit; }) -
        plans.begin() - 1;
    const SequencePlan& plan = plans[s];
    const SequenceLayout& seq = sequences[s];
    const int64_t local = unit - plan.first_unit;
    const int split = static_cast<int>(local % plan.splits);
    const int tile = static_cast<int>(local / plan.splits % plan.tiles);
    const int kv_head = static_cast<int>(local / plan.splits / plan.tiles);

    float q_rows[kTileRows * kMaxHeadDim];
    float scores[kTileRows * kMaxBlockSize];
    TileState local_state;
    TileState& state = any_split ? partials[unit] : local_state;
    TileTask task;
    task.k_layer = kv.k;
    task.v_layer = kv.v;
    task.block_table = seq.block_table.data();
    task.kv_head = kv_head;
    task.num_kv_heads = kv.num_kv_heads;
    task.block_size = kv.block_size;
    task.head_dim = d;
    int max_limit = 0;
    for (int r = 0; r < kTileRows; ++r) {
      // Rows past the real ones repeat the last real row; write_rows ignores them.
      const int row = std::min(tile * kTileRows + r, plan.rows - 1);
      const int64_t base = row_query_index(plan, kv_head, row);
      LoadRowAsFloat(kv.dtype, q, base, d, &q_rows[r * d]);
      task.limit[r] = seq.context_len - seq.num_queries + row / group + 1;
      max_limit = std::max(max_limit, task.limit[r]);
      state.max[r] = kNegInf;
      state.sum[r] = 0.0f;
    }
    std::fill(state.acc, state.acc + kTileRows * d, 0.0f);
    task.begin = static_cast<int>(std::min<int64_t>(int64_t{split} * split_tokens, max_limit));
    task.end = static_cast<int>(std::min<int64_t>(task.begin + int64_t{split_tokens}, max_limit));
    task.q = q_rows;
    task.scale = scale;
    task.acc = state.acc;
    task.max = state.max;
    task.sum = state.sum;
    task.scores = scores;
    kernel(task);
    if (plan.splits == 1) write_rows(plan, kv_head, tile, state);
  };

  // Merges a (sequence, head, tile)'s splits exactly: rescale each to the common max.
  auto merge_splits = [&](const SequencePlan& plan, int kv_head, int tile) {
    const TileState* first = &partials[plan.first_unit +
                                       (int64_t{kv_head} * plan.tiles + tile) * plan.splits];
    TileState merged;
    for (int r = 0; r < kTileRows; ++r) {
      float max = kNegInf;
      for (int i = 0; i < plan.splits; ++i) max = std::max(max, first[i].max[r]);
      merged.max[r] = max;
      merged.sum[r] = 0.0f;
      float* acc = merged.acc + r * d;
      std::fill(acc, acc + d, 0.0f);
      for (int i = 0; i < plan.splits; ++i) {
        if (first[i].sum[r] == 0.0f) continue;  // this split saw none of the row's positions
        const float weight = std::exp2(first[i].max[r] - max);
        merged.sum[r] += first[i].sum[r] * weight;
        const float* part = first[i].acc + r * d;
        for (int j = 0; j < d; ++j) acc[j] += part[j] * weight;
      }
    }
    write_rows(plan, kv_head, tile, merged);
  };

  if (threads != nullptr) {
    threads->ParallelFor(num_units, run_unit);
  } else {
    for (int64_t unit = 0; unit < num_units; ++unit) run_unit(unit);
  }
  if (!any_split) return;
  std::vector<std::pair<size_t, int>> merges;  // (sequence, kv_head * tiles + tile)
  for (size_t s = 0; s < plans.size(); ++s) {
    if (plans[s].splits == 1) continue;
    for (int i = 0; i < kv.num_kv_heads * plans[s].tiles; ++i) merges.emplace_back(s, i);
  }
  auto run_merge = [&](int64_t m) {
    const SequencePlan& plan = plans[merges[m].first];
    merge_splits(plan, merges[m].second / plan.tiles, merges[m].second % plan.tiles);
  };
  if (threads != nullptr) {
    threads->ParallelFor(static_cast<int64_t>(merges.size()), run_merge);
  } else {
    for (size_t m = 0; m < merges.size(); ++m) run_merge(m);
  }
}

}  // namespace kvtier
