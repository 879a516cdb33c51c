#include "cache/kv/cuda/kv_copy_cuda.h"

namespace kvtier::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 16;  // bytes per thread: one uint4

// One thread per 16 bytes of one head of one token, for K and V both. The tensor side is
// dense, so thread i handles tensor bytes [16 i, 16 i + 16).
template <bool kToPool>
__global__ void CopyKvSlotsKernel(DeviceKvLayer layer, const int64_t* __restrict__ slots,
                                  int64_t num_tokens, char* k, char* v) {
  const int64_t chunks_per_head = layer.head_bytes / kChunk;
  const int64_t total = num_tokens * layer.num_kv_heads * chunks_per_head;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t chunk = i % chunks_per_head;
    const int64_t head = i / chunks_per_head % layer.num_kv_heads;
    const int64_t token = i / chunks_per_head / layer.num_kv_heads;
    const int64_t slot = slots[token];
    const int64_t block = slot / layer.block_size;
    const int64_t offset = slot % layer.block_size;
    const int64_t pool_byte =
        ((block * layer.num_kv_heads + head) * layer.block_size + offset) * layer.head_bytes +
        chunk * kChunk;
    uint4* k_pool = reinterpret_cast<uint4*>(layer.k + pool_byte);
    uint4* v_pool = reinterpret_cast<uint4*>(layer.v + pool_byte);
    uint4* k_tensor = reinterpret_cast<uint4*>(k) + i;
    uint4* v_tensor = reinterpret_cast<uint4*>(v) + i;
    if (kToPool) {
      *k_pool = *k_tensor;
      *v_pool = *v_tensor;
    } else {
      *k_tensor = *k_pool;
      *v_tensor = *v_pool;
    }
  }
}

__global__ void DeviceCopyKernel(const uint4* __restrict__ src, uint4* __restrict__ dst,
                                 int64_t count) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i < count) dst[i] = src[i];
}

int GridFor(int64_t threads) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 20;  // the rest loops
  const int64_t blocks = (threads + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

template <bool kToPool>
cudaError_t LaunchCopyKvSlots(const DeviceKvLayer& layer, const int64_t* slots, int64_t num_tokens,
                              char* k, char* v, cudaStream_t stream) {
  const int64_t threads = num_tokens * layer.num_kv_heads * (layer.head_bytes / kChunk);
  if (threads == 0) return cudaSuccess;
  CopyKvSlotsKernel<kToPool>
      <<<GridFor(threads), kThreads, 0, stream>>>(layer, slots, num_tokens, k, v);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchScatterKv(const DeviceKvLayer& layer, const int64_t* slots, int64_t num_tokens,
                            const char* k, const char* v, cudaStream_t stream) {
  return LaunchCopyKvSlots<true>(layer, slots, num_tokens, const_cast<char*>(k),
                                 const_cast<char*>(v), stream);
}

cudaError_t LaunchGatherKv(const DeviceKvLayer& layer, const int64_t* slots, int64_t num_tokens,
                           char* k, char* v, cudaStream_t stream) {
  return LaunchCopyKvSlots<false>(layer, slots, num_tokens, k, v, stream);
}

cudaError_t LaunchDeviceCopy(const void* src, void* dst, int64_t bytes, cudaStream_t stream) {
  const int64_t count = bytes / kChunk;
  if (count == 0) return cudaSuccess;
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  DeviceCopyKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const uint4*>(src), static_cast<uint4*>(dst), count);
  return cudaGetLastError();
}

}  // namespace kvtier::cuda
