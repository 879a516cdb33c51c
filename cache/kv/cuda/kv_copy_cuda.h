// Copies between K/V tensors and a pool's slots on the device, and a plain device-to-device
// copy for measuring memory bandwidth. Host launchers of the kernels in kv_copy.cu; plain CUDA
// runtime C++, no Abseil.
#ifndef KVTIER_CACHE_KV_CUDA_KV_COPY_CUDA_H_
#define KVTIER_CACHE_KV_CUDA_KV_COPY_CUDA_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvtier::cuda {

// One layer's K and V in a pool and the geometry that places a slot's heads in it: layer
// tensors are [num_blocks][num_kv_heads][block_size][head_bytes].
struct DeviceKvLayer {
  char* k = nullptr;
  char* v = nullptr;
  int32_t num_kv_heads = 0;
  int32_t block_size = 0;
  int32_t head_bytes = 0;  // a multiple of 16
};

// Stores tensors k and v, [num_tokens][num_kv_heads][head_bytes], into `slots` of the layer.
cudaError_t LaunchScatterKv(const DeviceKvLayer& layer, const int64_t* slots, int64_t num_tokens,
                            const char* k, const char* v, cudaStream_t stream);

// The inverse: copies `slots` of the layer out into k and v.
cudaError_t LaunchGatherKv(const DeviceKvLayer& layer, const int64_t* slots, int64_t num_tokens,
                           char* k, char* v, cudaStream_t stream);

// dst[0, bytes) = src[0, bytes); both 16-byte aligned, bytes a multiple of 16.
cudaError_t LaunchDeviceCopy(const void* src, void* dst, int64_t bytes, cudaStream_t stream);

}  // namespace kvtier::cuda

#endif  // KVTIER_CACHE_KV_CUDA_KV_COPY_CUDA_H_
