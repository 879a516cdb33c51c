#include "cache/kv/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/kv/attention_plan.h"
#include "cache/kv/attention_tile.h"
#include "cache/kv/thread_pool.h"

namespace kvtier {
namespace {

using attention_internal::kMaxBlockSize;
using attention_internal::kMaxHeadDim;
using attention_internal::kTileRows;
using attention_internal::TileKernel;
using attention_internal::TileTask;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The online-softmax state of one tile over one split.
struct TileState {
  float acc[kTileRows * kMaxHeadDim];
  float max[kTileRows];
  float sum[kTileRows];
};

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
                                    const AttentionParams& params, int num_kv_heads, int block_size,
                                    int num_blocks) {
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
      return absl::InvalidArgumentError(absl::StrCat("sequences[", i,
                                                     "].num_queries: expected 1..context_len (",
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
        return absl::InvalidArgumentError(absl::StrCat("sequences[", i, "].block_table[", j,
                                                       "]: block id ", s.block_table[j],
                                                       " out of range [0, ", num_blocks, ")"));
      }
    }
  }
  return absl::OkStatus();
}

void PagedAttentionCpu(const PagedKvLayer& kv, absl::Span<const SequenceLayout> sequences,
                       const AttentionParams& params, const void* q, void* out, ThreadPool* threads,
                       CpuIsa isa) {
  const int d = kv.head_dim;
  const int group = params.num_q_heads / kv.num_kv_heads;
  const float scale = (params.scale != 0.0f ? params.scale : 1.0f / std::sqrt(float(d))) * kLog2e;
  const TileKernel kernel = SelectTileKernel(isa, kv.dtype, d);

  const int num_threads = threads != nullptr ? threads->num_threads() : 1;
  const AttentionPlan plan = PlanAttention(
      sequences, params, kv.num_kv_heads, kv.block_size,
      {.tile_rows = kTileRows, .target_units = num_threads > 1 ? 4 * int64_t{num_threads} : 0});
  const int split_tokens = plan.split_tokens;
  const bool any_split = plan.num_merges > 0;
  // Split units leave their state here for the merge; unsplit ones write out directly. Left
  // uninitialized: every unit sets its own state before use.
  std::unique_ptr<TileState[]> partials(any_split ? new TileState[plan.num_units] : nullptr);

  // Element offset in q and out of a query row of a sequence's KV head; rows are token-major:
  // row = query token * G + query head within the group.
  auto row_query_index = [&](const SequencePlan& seq_plan, int kv_head, int row) {
    const int64_t token = seq_plan.first_query + row / group;
    return (token * params.num_q_heads + int64_t{kv_head} * group + row % group) * d;
  };
  auto write_rows = [&](const SequencePlan& seq_plan, int kv_head, int tile,
                        const TileState& state) {
    for (int r = 0; r < kTileRows; ++r) {
      const int row = tile * kTileRows + r;
      if (row >= seq_plan.rows) break;
      const int64_t base = row_query_index(seq_plan, kv_head, row);
      StoreRowFromFloat(kv.dtype, &state.acc[r * d], 1.0f / state.sum[r], out, base, d);
    }
  };

  auto run_unit = [&](int64_t unit) {
    const int s = plan.SequenceOfUnit(unit);
    const SequencePlan& seq_plan = plan.sequences[s];
    const SequenceLayout& seq = sequences[s];
    const int64_t local = unit - seq_plan.first_unit;
    const int split = static_cast<int>(local % seq_plan.splits);
    const int tile = static_cast<int>(local / seq_plan.splits % seq_plan.tiles);
    const int kv_head = static_cast<int>(local / seq_plan.splits / seq_plan.tiles);

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
      const int row = std::min(tile * kTileRows + r, seq_plan.rows - 1);
      const int64_t base = row_query_index(seq_plan, kv_head, row);
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
    if (seq_plan.splits == 1) write_rows(seq_plan, kv_head, tile, state);
  };

  // Merges a (sequence, head, tile)'s splits exactly: rescale each to the common max.
  auto run_merge = [&](int64_t merge) {
    const SequencePlan& seq_plan = plan.sequences[plan.SequenceOfMerge(merge)];
    const int64_t local = merge - seq_plan.first_merge;
    const int kv_head = static_cast<int>(local / seq_plan.tiles);
    const int tile = static_cast<int>(local % seq_plan.tiles);
    const TileState* first = &partials[seq_plan.first_unit + local * seq_plan.splits];
    TileState merged;
    for (int r = 0; r < kTileRows; ++r) {
      float max = kNegInf;
      for (int i = 0; i < seq_plan.splits; ++i) max = std::max(max, first[i].max[r]);
      merged.max[r] = max;
      merged.sum[r] = 0.0f;
      float* acc = merged.acc + r * d;
      std::fill(acc, acc + d, 0.0f);
      for (int i = 0; i < seq_plan.splits; ++i) {
        if (first[i].sum[r] == 0.0f) continue;  // this split saw none of the row's positions
        const float weight = std::exp2(first[i].max[r] - max);
        merged.sum[r] += first[i].sum[r] * weight;
        const float* part = first[i].acc + r * d;
        for (int j = 0; j < d; ++j) acc[j] += part[j] * weight;
      }
    }
    write_rows(seq_plan, kv_head, tile, merged);
  };

  if (threads != nullptr) {
    threads->ParallelFor(plan.num_units, run_unit);
    threads->ParallelFor(plan.num_merges, run_merge);
  } else {
    for (int64_t unit = 0; unit < plan.num_units; ++unit) run_unit(unit);
    for (int64_t merge = 0; merge < plan.num_merges; ++merge) run_merge(merge);
  }
}

}  // namespace kvtier
