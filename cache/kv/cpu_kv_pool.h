// The CPU backend of KvPool: blocks in one page-aligned host allocation, zero-filled at
// creation (so serving never page-faults), attention by PagedAttentionCpu on a ThreadPool.
// Thread-safety as KvPool; the ThreadPool serializes concurrent Attend calls' parallel loops.
#ifndef KVTIER_CACHE_KV_CPU_KV_POOL_H_
#define KVTIER_CACHE_KV_CPU_KV_POOL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "cache/kv/cpu_isa.h"
#include "cache/kv/kv_pool.h"
#include "cache/kv/thread_pool.h"

namespace kvtier {

struct CpuKvPoolOptions {
  // Runs attention; must outlive the pool. Null runs it on the calling thread.
  ThreadPool* threads = nullptr;
  // The best kernel ISA to use; the CPU and head_dim may lower it (cpu_isa.h).
  CpuIsa isa = BestCpuIsa();
};

// RESOURCE_EXHAUSTED when the host cannot allocate shape.total_bytes().
absl::StatusOr<std::unique_ptr<KvPool>> CreateCpuKvPool(const KvPoolShape& shape,
                                                        const CpuKvPoolOptions& options);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_CPU_KV_POOL_H_
