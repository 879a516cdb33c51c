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
using attention_internal::kTileRows;
using attention_internal::TileKernel;
using attention_internal::TileTask;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The online-softmax state of one unit over its split, in `heads` x kTileRows rows (row
// h * kTileRows + r is row r of the unit's tile in its h-th KV head): acc [rows][head_dim], max
// and sum [rows], in one run of StateFloats floats.
struct UnitState {
  float* acc;
  float* max;
  float* sum;

  static int64_t StateFloats(int heads, int head_dim) {
    return int64_t{heads} * kTileRows * (head_dim + 2);
  }
  static UnitState At(float* base, int heads, int head_dim) {
    const int64_t rows = int64_t{heads} * kTileRows;
    return {base, base + rows * head_dim, base + rows * (head_dim + 1)};
  }
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
  if (params.kv_heads_per_unit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_heads_per_unit: expected >= 0, got ", params.kv_heads_per_unit));
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
  const AttentionPlan plan =
      PlanAttention(sequences, params, kv.num_kv_heads, kv.block_size,
                    {.tile_rows = kTileRows,
                     .target_units = num_threads > 1 ? 4 * int64_t{num_threads} : 0,
                     .max_kv_heads_per_unit = attention_internal::kMaxKvHeadsPerUnit});
  const int split_tokens = plan.split_tokens;
  const bool any_split = plan.num_merges > 0;
  const int64_t state_floats = UnitState::StateFloats(plan.kv_heads_per_unit, d);
  // Split units leave their state here for the merge; unsplit ones write out directly. Left
  // uninitialized: every unit sets its own state before use.
  std::unique_ptr<float[]> partials(any_split ? new float[plan.num_units * state_floats]
                                              : nullptr);

  // Element offset in q and out of a query row of a sequence's KV head; rows are token-major:
  // row = query token * G + query head within the group.
  auto row_query_index = [&](const SequencePlan& seq_plan, int kv_head, int row) {
    const int64_t token = seq_plan.first_query + row / group;
    return (token * params.num_q_heads + int64_t{kv_head} * group + row % group) * d;
  };
  auto write_rows = [&](const SequencePlan& seq_plan, int first_kv_head, int heads, int tile,
                        const UnitState& state) {
    for (int h = 0; h < heads; ++h) {
      for (int r = 0; r < kTileRows; ++r) {
        const int row = tile * kTileRows + r;
        if (row >= seq_plan.rows) break;
        const int64_t base = row_query_index(seq_plan, first_kv_head + h, row);
        const int state_row = h * kTileRows + r;
        StoreRowFromFloat(kv.dtype, &state.acc[state_row * d], 1.0f / state.sum[state_row], out,
                          base, d);
      }
    }
  };

  auto run_unit = [&](int64_t unit) {
    const int s = plan.SequenceOfUnit(unit);
    const SequencePlan& seq_plan = plan.sequences[s];
    const SequenceLayout& seq = sequences[s];
    const int64_t local = unit - seq_plan.first_unit;
    const int split = static_cast<int>(local % seq_plan.splits);
    const int tile = static_cast<int>(local / seq_plan.splits % seq_plan.tiles);
    const int head_group = static_cast<int>(local / seq_plan.splits / seq_plan.tiles);
    const int first_kv_head = plan.FirstKvHead(head_group);
    const int heads = plan.KvHeadsOf(head_group, kv.num_kv_heads);

    // Scratch: queries as loaded and as the kernel prepares them, scores, and, for an unsplit
    // unit, its state.
    const int64_t query_floats = int64_t{heads} * kTileRows * d;
    std::vector<float> scratch(2 * query_floats + kTileRows * kMaxBlockSize +
                               (any_split ? 0 : state_floats));
    float* q_rows = scratch.data();
    float* state_base = any_split ? &partials[unit * state_floats]
                                  : q_rows + 2 * query_floats + kTileRows * kMaxBlockSize;
    const UnitState state = UnitState::At(state_base, heads, d);
    TileTask task;
    task.k_layer = kv.k;
    task.v_layer = kv.v;
    task.block_table = seq.block_table.data();
    task.first_kv_head = first_kv_head;
    task.kv_heads = heads;
    task.num_kv_heads = kv.num_kv_heads;
    task.block_size = kv.block_size;
    task.head_dim = d;
    int max_limit = 0;
    for (int r = 0; r < kTileRows; ++r) {
      // Rows past the real ones repeat the last real row; write_rows ignores them.
      const int row = std::min(tile * kTileRows + r, seq_plan.rows - 1);
      for (int h = 0; h < heads; ++h) {
        const int64_t base = row_query_index(seq_plan, first_kv_head + h, row);
        LoadRowAsFloat(kv.dtype, q, base, d, &q_rows[(h * kTileRows + r) * d]);
      }
      task.limit[r] = seq.context_len - seq.num_queries + row / group + 1;
      max_limit = std::max(max_limit, task.limit[r]);
    }
    std::fill(state.max, state.max + heads * kTileRows, kNegInf);
    std::fill(state.sum, state.sum + heads * kTileRows, 0.0f);
    std::fill(state.acc, state.acc + query_floats, 0.0f);
    task.begin = static_cast<int>(std::min<int64_t>(int64_t{split} * split_tokens, max_limit));
    task.end = static_cast<int>(std::min<int64_t>(task.begin + int64_t{split_tokens}, max_limit));
    task.q = q_rows;
    task.scale = scale;
    task.acc = state.acc;
    task.max = state.max;
    task.sum = state.sum;
    task.prepared_q = q_rows + query_floats;
    task.scores = q_rows + 2 * query_floats;
    kernel(task);
    if (seq_plan.splits == 1) write_rows(seq_plan, first_kv_head, heads, tile, state);
  };

  // Merges a (sequence, head group, tile)'s splits exactly: rescale each to the common max.
  auto run_merge = [&](int64_t merge) {
    const SequencePlan& seq_plan = plan.sequences[plan.SequenceOfMerge(merge)];
    const int64_t local = merge - seq_plan.first_merge;
    const int head_group = static_cast<int>(local / seq_plan.tiles);
    const int tile = static_cast<int>(local % seq_plan.tiles);
    const int heads = plan.KvHeadsOf(head_group, kv.num_kv_heads);
    const int64_t first_unit = seq_plan.first_unit + local * seq_plan.splits;
    std::vector<UnitState> parts;
    for (int i = 0; i < seq_plan.splits; ++i) {
      parts.push_back(UnitState::At(&partials[(first_unit + i) * state_floats], heads, d));
    }
    std::vector<float> merged_floats(UnitState::StateFloats(heads, d));
    const UnitState merged = UnitState::At(merged_floats.data(), heads, d);
    for (int row = 0; row < heads * kTileRows; ++row) {
      float max = kNegInf;
      for (const UnitState& part : parts) max = std::max(max, part.max[row]);
      merged.max[row] = max;
      merged.sum[row] = 0.0f;
      float* acc = merged.acc + row * d;
      for (const UnitState& part : parts) {
        if (part.sum[row] == 0.0f) continue;  // this split saw none of the row's positions
        const float weight = std::exp2(part.max[row] - max);
        merged.sum[row] += part.sum[row] * weight;
        const float* part_acc = part.acc + row * d;
        for (int j = 0; j < d; ++j) acc[j] += part_acc[j] * weight;
      }
    }
    write_rows(seq_plan, plan.FirstKvHead(head_group), heads, tile, merged);
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
