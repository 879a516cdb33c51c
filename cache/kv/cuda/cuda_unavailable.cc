// The CUDA backend's entry points in a build without the CUDA toolkit: each says so.
#include "cache/kv/cuda/cuda_kv_pool.h"

namespace kvtier {
namespace {

absl::Status NotBuilt() {
  return absl::FailedPreconditionError(
      "this kvtier was built without the CUDA backend (KVTIER_CUDA=OFF, or no CUDA toolkit "
      "at configure time: install one or set CUDACXX, and reconfigure)");
}

}  // namespace

bool CudaBackendBuilt() { return false; }

absl::StatusOr<int> CudaDeviceCount() { return NotBuilt(); }

absl::StatusOr<std::unique_ptr<KvPool>> CreateCudaKvPool(const KvPoolShape&,
                                                         const CudaKvPoolOptions&) {
  return NotBuilt();
}

absl::StatusOr<CudaPoolMemory> CudaPoolMemoryOf(const KvPool&) { return NotBuilt(); }

}  // namespace kvtier
