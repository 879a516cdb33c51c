#include "cache/kv/cuda/cuda_buffers.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "cache/kv/cuda/cuda_status.h"

namespace kvtier {

CudaBuffer::~CudaBuffer() { Free().IgnoreError(); }

absl::Status CudaBuffer::Free() {
  char* data = data_;
  data_ = nullptr;
  capacity_ = 0;
  if (memory_ == Memory::kDevice) {
    KVTIER_CUDA_RETURN_IF_ERROR(cudaFree(data));
  } else {
    KVTIER_CUDA_RETURN_IF_ERROR(cudaFreeHost(data));
  }
  return absl::OkStatus();
}

absl::Status CudaBuffer::Reserve(size_t bytes) {
  if (bytes <= capacity_) return absl::OkStatus();
  const size_t capacity = std::max(bytes, capacity_ + capacity_ / 2);
  if (absl::Status status = Free(); !status.ok()) return status;
  void* data = nullptr;
  if (memory_ == Memory::kDevice) {
    KVTIER_CUDA_RETURN_IF_ERROR(cudaMalloc(&data, capacity));
  } else {
    KVTIER_CUDA_RETURN_IF_ERROR(cudaMallocHost(&data, capacity));
  }
  data_ = static_cast<char*>(data);
  capacity_ = capacity;
  return absl::OkStatus();
}

}  // namespace kvtier
