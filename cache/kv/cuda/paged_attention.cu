#include "cache/kv/cuda/paged_attention_cuda.h"

namespace kvtier::cuda {

bool PagedAttentionSupportsHeadDim(int head_dim) {
  return head_dim == 64 || head_dim == 128 || head_dim == 256;
}

int PagedAttentionTileRows(int max_rows) {
  for (int rows : {1, 2, 4}) {
    if (max_rows <= rows) return rows;
  }
  return 8;
}

cudaError_t LaunchPagedAttention(const PagedAttentionLaunch& launch, cudaStream_t stream) {
  if (launch.num_units == 0) return cudaSuccess;
  switch (launch.dtype) {
    case CudaDType::kF32:
      return LaunchPagedAttentionF32(launch, stream);
    case CudaDType::kF16:
      return LaunchPagedAttentionF16(launch, stream);
    case CudaDType::kBF16:
      return LaunchPagedAttentionBF16(launch, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace kvtier::cuda
