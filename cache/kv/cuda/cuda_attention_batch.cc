#include "cache/kv/cuda/cuda_attention_batch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cache/kv/attention_plan.h"
#include "cache/kv/cuda/cuda_status.h"

namespace kvtier {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
// NOTE: four resident units per multiprocessor (16 warps) keep enough loads in flight to
// saturate HBM in decode; fewer units than that is when splitting a context pays for its merge.
constexpr int kUnitsPerSm = 4;

}  // namespace

cuda::CudaDType ToCudaDType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return cuda::CudaDType::kF32;
    case DType::kF16:
      return cuda::CudaDType::kF16;
    case DType::kBF16:
      return cuda::CudaDType::kBF16;
  }
  return cuda::CudaDType::kBF16;
}

absl::StatusOr<cuda::PagedAttentionLaunch> CudaAttentionBatch::Prepare(
    absl::Span<const SequenceLayout> sequences, const AttentionParams& params,
    const KvPoolShape& shape, int num_sms, cudaStream_t stream) {
  const int group = params.num_q_heads / shape.num_kv_heads;
  int max_rows = 0;
  for (const SequenceLayout& s : sequences) max_rows = std::max(max_rows, s.num_queries * group);
  const AttentionPlan plan = PlanAttention(sequences, params, shape.num_kv_heads, shape.block_size,
                                           {.tile_rows = cuda::PagedAttentionTileRows(max_rows),
                                            .target_units = int64_t{kUnitsPerSm} * num_sms});

  // Packed as [DeviceSequence x n][int32 block ids], each table cut to the blocks it uses.
  std::vector<cuda::DeviceSequence> packed(sequences.size());
  int64_t table_entries = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const SequencePlan& p = plan.sequences[s];
    cuda::DeviceSequence& d = packed[s];
    d.first_query = p.first_query;
    d.first_unit = p.first_unit;
    d.first_merge = p.first_merge;
    d.block_table_offset = static_cast<int32_t>(table_entries);
    d.context_len = sequences[s].context_len;
    d.num_queries = sequences[s].num_queries;
    d.rows = p.rows;
    d.tiles = p.tiles;
    d.splits = p.splits;
    table_entries += (sequences[s].context_len + shape.block_size - 1) / shape.block_size;
  }
  const size_t sequence_bytes = packed.size() * sizeof(cuda::DeviceSequence);
  const size_t bytes = sequence_bytes + table_entries * sizeof(int32_t);
  for (CudaBuffer* buffer : {&host_, &device_}) {
    if (absl::Status status = buffer->Reserve(bytes); !status.ok()) return status;
  }
  std::memcpy(host_.data(), packed.data(), sequence_bytes);
  int32_t* tables = reinterpret_cast<int32_t*>(host_.data() + sequence_bytes);
  for (size_t s = 0; s < sequences.size(); ++s) {
    const int blocks = (sequences[s].context_len + shape.block_size - 1) / shape.block_size;
    std::copy_n(sequences[s].block_table.data(), blocks, tables + packed[s].block_table_offset);
  }
  KVTIER_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(device_.data(), host_.data(), bytes, cudaMemcpyHostToDevice, stream));

  cuda::PagedAttentionLaunch launch;
  if (plan.num_merges > 0) {
    const size_t states = plan.num_units * plan.tile_rows;
    if (absl::Status status = partials_.Reserve(states * (shape.head_dim + 2) * sizeof(float));
        !status.ok()) {
      return status;
    }
    launch.partial_acc = reinterpret_cast<float*>(partials_.data());
    launch.partial_stats = launch.partial_acc + states * shape.head_dim;
  }
  launch.dtype = ToCudaDType(shape.dtype);
  launch.head_dim = shape.head_dim;
  launch.tile_rows = plan.tile_rows;
  launch.sequences = reinterpret_cast<const cuda::DeviceSequence*>(device_.data());
  launch.block_tables = reinterpret_cast<const int32_t*>(device_.data() + sequence_bytes);
  launch.num_sequences = static_cast<int32_t>(sequences.size());
  launch.num_kv_heads = shape.num_kv_heads;
  launch.num_q_heads = params.num_q_heads;
  launch.group = group;
  launch.block_size = shape.block_size;
  launch.split_tokens = plan.split_tokens;
  const float scale =
      params.scale != 0.0f ? params.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  launch.scale_log2 = scale * kLog2e;
  launch.num_units = plan.num_units;
  launch.num_merges = plan.num_merges;
  return launch;
}

}  // namespace kvtier
