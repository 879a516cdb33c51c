// The host side of the CUDA paged-attention kernels (paged_attention_kernel.cuh): the launch
// arguments and the launchers. Plain CUDA runtime C++, no Abseil, so that nvcc compiles the
// kernels without the rest of kvtier; cuda_attention_batch.h builds the arguments.
//
// A launch runs one layer of one batch, cut as AttentionPlan (cache/attention_plan.h) says:
// one thread block per unit, then, when some sequence's context is split, one per merge.
// Memory layouts:
//   k, v          [num_blocks][num_kv_heads][block_size][head_dim] of dtype (one layer)
//   q, out        [total queries][num_q_heads][head_dim] of dtype
//   block_tables  the sequences' tables, concatenated (int32 block ids)
//   partial_acc   [num_units][tile_rows][head_dim] fp32, unnormalized outputs of split units
//   partial_stats [num_units][tile_rows][2] fp32: running max (log2 domain) and sum
#ifndef KVTIER_CACHE_KV_CUDA_PAGED_ATTENTION_CUDA_H_
#define KVTIER_CACHE_KV_CUDA_PAGED_ATTENTION_CUDA_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvtier::cuda {

enum class CudaDType : int32_t { kF32, kF16, kBF16 };

// One sequence of the batch, as the kernels read it (AttentionPlan's SequencePlan plus the
// layout).
struct DeviceSequence {
  int64_t first_query = 0;
  int64_t first_unit = 0;
  int64_t first_merge = 0;
  int32_t block_table_offset = 0;
  int32_t context_len = 0;
  int32_t num_queries = 0;
  int32_t rows = 0;
  int32_t tiles = 0;
  int32_t splits = 1;
};

struct PagedAttentionLaunch {
  CudaDType dtype = CudaDType::kBF16;
  int32_t head_dim = 0;   // 64, 128 or 256
  int32_t tile_rows = 0;  // 1, 2, 4 or 8
  const void* k = nullptr;
  const void* v = nullptr;
  const int32_t* block_tables = nullptr;
  const DeviceSequence* sequences = nullptr;
  int32_t num_sequences = 0;
  int32_t num_kv_heads = 0;
  int32_t num_q_heads = 0;
  int32_t group = 1;
  int32_t block_size = 0;
  int32_t split_tokens = 0;
  float scale_log2 = 0.0f;  // softmax scale times log2 e
  const void* q = nullptr;
  void* out = nullptr;
  float* partial_acc = nullptr;
  float* partial_stats = nullptr;
  int64_t num_units = 0;
  int64_t num_merges = 0;
};

// True for the head dims the kernels are built for.
bool PagedAttentionSupportsHeadDim(int head_dim);

// The tile height the kernels use for a batch whose sequences have at most `max_rows` query
// rows per KV head: the smallest of 1, 2, 4, 8 that holds them, else 8.
int PagedAttentionTileRows(int max_rows);

// Queues the attention (and the merge, when num_merges > 0) on `stream`; returns the launch
// error, if any. The arguments must describe a validated batch.
cudaError_t LaunchPagedAttention(const PagedAttentionLaunch& launch, cudaStream_t stream);

// Per-dtype halves of LaunchPagedAttention, one translation unit each.
cudaError_t LaunchPagedAttentionF32(const PagedAttentionLaunch& launch, cudaStream_t stream);
cudaError_t LaunchPagedAttentionF16(const PagedAttentionLaunch& launch, cudaStream_t stream);
cudaError_t LaunchPagedAttentionBF16(const PagedAttentionLaunch& launch, cudaStream_t stream);

}  // namespace kvtier::cuda

#endif  // KVTIER_CACHE_KV_CUDA_PAGED_ATTENTION_CUDA_H_
