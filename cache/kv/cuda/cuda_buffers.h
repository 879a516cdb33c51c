// CudaBuffer: a growable CUDA allocation for staging, either device memory (cudaMalloc) or
// page-locked host memory (cudaMallocHost, which async copies need). Reserve discards the
// contents when it grows and never shrinks; capacity grows by at least 1.5x to amortize
// reallocation. Device memory is on the caller's current device.
//
// Not thread-safe: each is owned by one object that serializes its use.
#ifndef KVTIER_CACHE_KV_CUDA_CUDA_BUFFERS_H_
#define KVTIER_CACHE_KV_CUDA_CUDA_BUFFERS_H_

#include <cstddef>

#include "absl/status/status.h"

namespace kvtier {

class CudaBuffer {
 public:
  enum class Memory { kDevice, kPinnedHost };

  explicit CudaBuffer(Memory memory) : memory_(memory) {}
  ~CudaBuffer();
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;

  // At least `bytes`; the contents are lost when it has to grow.
  absl::Status Reserve(size_t bytes);
  char* data() const { return data_; }

 private:
  absl::Status Free();

  const Memory memory_;
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_CUDA_CUDA_BUFFERS_H_
