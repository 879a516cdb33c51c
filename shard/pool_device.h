// PoolDevice: where a shard keeps its K/V pools and runs their attention: host memory with the
// CPU kernels on the shard's thread pool, or one CUDA device (cache/cuda), whose pools stage
// only the request and response tensors through pinned host buffers.
//
// Plain values and pure functions, apart from CheckPoolDevice, which asks the CUDA runtime.
#ifndef KVTIER_SHARD_POOL_DEVICE_H_
#define KVTIER_SHARD_POOL_DEVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/kv/kv_pool.h"
#include "cache/kv/thread_pool.h"

namespace kvtier {

struct PoolDevice {
  enum class Kind { kCpu, kCuda };

  Kind kind = Kind::kCpu;
  int cuda_ordinal = 0;  // for kCuda

  // "cpu" or "cuda:N".
  std::string Name() const;
};

// Parses "cpu", "cuda" (cuda:0) or "cuda:N"; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<PoolDevice> ParsePoolDevice(absl::string_view field, absl::string_view text);

// OK when pools can be made on `device`: always for the CPU; for CUDA, FAILED_PRECONDITION when
// this build has no CUDA backend or no device is usable, INVALID_ARGUMENT naming `field` for an
// ordinal the machine lacks.
absl::Status CheckPoolDevice(absl::string_view field, const PoolDevice& device);

// Makes the pool of a hosted range.
using PoolFactory = std::function<absl::StatusOr<std::unique_ptr<KvPool>>(const KvPoolShape&)>;

// Pools on `device`; CPU pools run attention on `threads`, which must outlive them.
PoolFactory PoolFactoryFor(const PoolDevice& device, ThreadPool* threads);

}  // namespace kvtier

#endif  // KVTIER_SHARD_POOL_DEVICE_H_
