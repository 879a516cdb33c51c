// The CUDA backend of KvPool: K/V blocks in device memory, paged attention by the kernels of
// paged_attention_kernel.cuh, and the request and response tensors staged through pinned host
// buffers.
//
// Storage is one plain cudaMalloc slab per pool (never managed memory), zero-filled at
// creation, laid out like the CPU pool: for layer l, K at slab + 2 * l * layer_bytes and V
// right after it, each [num_blocks][num_kv_heads][block_size][head_dim]. One non-blocking
// stream per pool; every call stages, launches and waits before returning, so the device
// memory is quiescent between calls.
//
// This header needs no CUDA headers: it is the same in a build without the toolkit, where
// CreateCudaKvPool and CudaDeviceCount say that the build has no CUDA backend.
//
// Thread-safety as KvPool. One mutex per pool serializes its calls, which share the stream
// and the staging buffers.
#ifndef KVTIER_CACHE_KV_CUDA_CUDA_KV_POOL_H_
#define KVTIER_CACHE_KV_CUDA_CUDA_KV_POOL_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "cache/kv/kv_pool.h"

namespace kvtier {

// True when this build has the CUDA backend (the toolkit was found at configure time).
bool CudaBackendBuilt();

// The number of CUDA devices this process can use; FAILED_PRECONDITION naming why there is
// none usable (no CUDA backend in this build, no driver, no device).
absl::StatusOr<int> CudaDeviceCount();

struct CudaKvPoolOptions {
  int device = 0;  // CUDA device ordinal
};

// INVALID_ARGUMENT for a shape the kernels do not cover (head_dim 64, 128 or 256; any block
// size the pool allows), naming the field; RESOURCE_EXHAUSTED when the device cannot hold
// shape.total_bytes(); FAILED_PRECONDITION without a usable device; other CUDA failures as
// INTERNAL naming the call.
absl::StatusOr<std::unique_ptr<KvPool>> CreateCudaKvPool(const KvPoolShape& shape,
                                                         const CudaKvPoolOptions& options);

// The device memory behind a CUDA pool, for transfers that bypass the host (NCCL). Layer l's K
// of block b is block_bytes at slab + 2 * l * layer_bytes + b * block_bytes, its V layer_bytes
// further. The caller must keep the pool alive and must not race its own device writes with
// the pool's calls on the same blocks (the coordinator's block ownership guarantees that).
struct CudaPoolMemory {
  int device = 0;
  char* slab = nullptr;     // a device address
  int64_t layer_bytes = 0;  // K (or V) of one layer, all blocks
  int64_t block_bytes = 0;  // K (or V) of one layer, one block
};

// FAILED_PRECONDITION when `pool` is not a CUDA pool.
absl::StatusOr<CudaPoolMemory> CudaPoolMemoryOf(const KvPool& pool);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_CUDA_CUDA_KV_POOL_H_
