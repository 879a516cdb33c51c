// CudaAttentionBatch: a batch of paged attention (attention.h) prepared for the CUDA kernels:
// its AttentionPlan for the device's multiprocessors; the sequences and block tables packed
// as the kernels read them, staged in pinned memory and copied to the device in one transfer;
// and the fp32 scratch where split units leave their softmax states.
//
// Not thread-safe. Prepare reuses the buffers, so whatever the previous Prepare fed must have
// completed on the device first.
#ifndef KVTIER_CACHE_KV_CUDA_CUDA_ATTENTION_BATCH_H_
#define KVTIER_CACHE_KV_CUDA_CUDA_ATTENTION_BATCH_H_

#include <cuda_runtime_api.h>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cache/kv/attention.h"
#include "cache/kv/cuda/cuda_buffers.h"
#include "cache/kv/cuda/paged_attention_cuda.h"
#include "cache/kv/kv_pool.h"

namespace kvtier {

class CudaAttentionBatch {
 public:
  CudaAttentionBatch() = default;
  CudaAttentionBatch(const CudaAttentionBatch&) = delete;
  CudaAttentionBatch& operator=(const CudaAttentionBatch&) = delete;

  // Plans and packs `sequences` (which passed ValidateAttentionBatch) for a pool of `shape` on
  // a device with `num_sms` multiprocessors, queues the upload on `stream`, and returns the
  // launch arguments with all but k, v, q and out filled in.
  absl::StatusOr<cuda::PagedAttentionLaunch> Prepare(absl::Span<const SequenceLayout> sequences,
                                                     const AttentionParams& params,
                                                     const KvPoolShape& shape, int num_sms,
                                                     cudaStream_t stream);

 private:
  CudaBuffer host_{CudaBuffer::Memory::kPinnedHost};
  CudaBuffer device_{CudaBuffer::Memory::kDevice};
  CudaBuffer partials_{CudaBuffer::Memory::kDevice};
};

// The kernels' name for `dtype`.
cuda::CudaDType ToCudaDType(DType dtype);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_CUDA_CUDA_ATTENTION_BATCH_H_
