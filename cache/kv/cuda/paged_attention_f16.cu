// The paged-attention kernels for f16 K/V, one translation unit per dtype so they build
// in parallel.
#include "cache/kv/cuda/paged_attention_kernel.cuh"

namespace kvtier::cuda {

cudaError_t LaunchPagedAttentionF16(const PagedAttentionLaunch& launch, cudaStream_t stream) {
  return paged_attention_internal::LaunchForDType<__half>(launch, stream);
}

}  // namespace kvtier::cuda
