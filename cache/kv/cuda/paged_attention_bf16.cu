// The paged-attention kernels for bf16 K/V, one translation unit per dtype so they build
// in parallel.
#include "cache/kv/cuda/paged_attention_kernel.cuh"

namespace kvtier::cuda {

cudaError_t LaunchPagedAttentionBF16(const PagedAttentionLaunch& launch, cudaStream_t stream) {
  return paged_attention_internal::LaunchForDType<__nv_bfloat16>(launch, stream);
}

}  // namespace kvtier::cuda
