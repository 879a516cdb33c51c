// CpuIsa: the instruction sets the CPU attention kernels are written for, best last. A pool
// asks for an ISA as a ceiling; each call runs the best kernel at or below it that both the CPU
// and the head_dim allow (AVX-512 needs head_dim % 32 == 0, AVX2 % 16; portable takes any).
// Pure functions of the CPU; thread-safe.
#ifndef KVTIER_CACHE_KV_CPU_ISA_H_
#define KVTIER_CACHE_KV_CPU_ISA_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvtier {

enum class CpuIsa {
  kPortable,  // plain C++
  kAvx2,      // AVX2 + FMA + F16C
  kAvx512,  // AVX-512F, with the AVX2 set (Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4 and later)
};

// The best ISA this CPU runs.
CpuIsa BestCpuIsa();

bool CpuSupports(CpuIsa isa);

// "portable", "avx2" or "avx512".
absl::string_view CpuIsaName(CpuIsa isa);
absl::StatusOr<CpuIsa> ParseCpuIsa(absl::string_view name);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_CPU_ISA_H_
