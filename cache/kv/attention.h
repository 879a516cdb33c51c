// Paged attention over a KvPool's blocks: the batch description shared by every backend, and
// the CPU kernel.
//
// A batch is a list of sequences. Sequence s has a block table (physical block ids in token
// order), a context length C (tokens cached, including this step's new ones) and n >= 1 new
// queries, which are its last n positions: query i (0-based) attends causally to positions
// [0, C - n + i]. n = 1 is decode; n > 1 is (chunked) prefill. Queries and outputs are
// [sum of n][num_q_heads][head_dim]; query head h reads KV head h / G, G = num_q_heads /
// num_kv_heads (grouped-query attention; G = 1 is multi-head attention).
//
// Softmax runs online in fp32 (running max and sum per query row), scores are scaled by
// `scale` (1/sqrt(head_dim) when 0), and outputs are rounded once to the pool's dtype.
#ifndef KVTIER_CACHE_KV_ATTENTION_H_
#define KVTIER_CACHE_KV_ATTENTION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "cache/kv/cpu_isa.h"
#include "cache/kv/dtype.h"

namespace kvtier {

class ThreadPool;

struct SequenceLayout {
  absl::Span<const int32_t> block_table;
  int32_t context_len = 0;  // C: tokens in context, this step's included
  int32_t num_queries = 0;  // n: new tokens, the last n of the context
};

struct AttentionParams {
  int num_q_heads = 0;
  float scale = 0.0f;  // 0: 1/sqrt(head_dim)
  // Tokens of context per unit of parallel work when a sequence's KV axis is split (rounded up
  // to whole blocks); 0 lets the kernel choose from the batch and the thread count.
  int kv_split_tokens = 0;
  // KV heads per unit of parallel work, on backends whose units may read several heads of a
  // block (capped by the backend and the head count); 0 lets the kernel choose.
  int kv_heads_per_unit = 0;
};

// One layer of paged K/V in host memory, each of K and V laid out [num_blocks][num_kv_heads]
// [block_size][head_dim] in `dtype`.
struct PagedKvLayer {
  const void* k = nullptr;
  const void* v = nullptr;
  int num_blocks = 0;
  int num_kv_heads = 0;
  int block_size = 0;
  int head_dim = 0;
  DType dtype = DType::kBF16;
};

// Total queries in a batch: the leading dimension of q and out.
int64_t TotalQueries(absl::Span<const SequenceLayout> sequences);

// Checks a batch against a layer's geometry: query heads a positive multiple of KV heads,
// 1 <= n <= C, C covered by the block table, every block id in range. INVALID_ARGUMENT naming
// the sequence and field otherwise.
absl::Status ValidateAttentionBatch(absl::Span<const SequenceLayout> sequences,
                                    const AttentionParams& params, int num_kv_heads, int block_size,
                                    int num_blocks);

// CPU paged attention on validated arguments, with the best kernel at or below `isa` that the
// CPU and head_dim allow (cpu_isa.h). Work is spread over `threads` as AttentionPlan cuts it
// (groups of KV heads x query tiles x KV splits, merged exactly); a null `threads` runs on the
// caller alone.
void PagedAttentionCpu(const PagedKvLayer& kv, absl::Span<const SequenceLayout> sequences,
                       const AttentionParams& params, const void* q, void* out, ThreadPool* threads,
                       CpuIsa isa);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_ATTENTION_H_
