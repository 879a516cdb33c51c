// CUDA runtime errors as absl::Status, with the failed call named:
//   KVTIER_CUDA_RETURN_IF_ERROR(cudaMalloc(&slab, bytes));
// returns, on failure, "cudaMalloc(&slab, bytes): cudaErrorMemoryAllocation: out of memory"
// as RESOURCE_EXHAUSTED. Pure functions; thread-safe.
#ifndef KVTIER_CACHE_KV_CUDA_CUDA_STATUS_H_
#define KVTIER_CACHE_KV_CUDA_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kvtier {

// OK for cudaSuccess. Otherwise RESOURCE_EXHAUSTED for out-of-memory errors,
// FAILED_PRECONDITION when there is no usable device or driver, INTERNAL for the rest; the
// message is "<call>: <error name>: <error string>". It also clears the calling thread's last
// error, so that a later launch's cudaGetLastError reports that launch alone.
absl::Status CudaCallStatus(cudaError_t error, absl::string_view call);

}  // namespace kvtier

#define KVTIER_CUDA_RETURN_IF_ERROR(call)                                                 \
  do {                                                                                    \
    if (const cudaError_t kvtier_cuda_error = (call); kvtier_cuda_error != cudaSuccess) { \
      return ::kvtier::CudaCallStatus(kvtier_cuda_error, #call);                          \
    }                                                                                     \
  } while (0)

#endif  // KVTIER_CACHE_KV_CUDA_CUDA_STATUS_H_
