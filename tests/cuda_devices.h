// Skipping a test, with the reason printed, where this machine lacks the CUDA devices it needs
// (no CUDA backend in the build, no driver, no device, or too few). GPU tests are always
// compiled; this is how they stay honest on machines without a GPU.
#ifndef KVTIER_TESTS_CUDA_DEVICES_H_
#define KVTIER_TESTS_CUDA_DEVICES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cache/kv/cuda/cuda_kv_pool.h"
#include "gtest/gtest.h"

namespace kvtier::test {

// Why a test that needs `gpus` CUDA devices cannot run here; empty when it can.
inline std::string MissingCudaDevices(int gpus) {
  const absl::StatusOr<int> count = CudaDeviceCount();
  if (!count.ok())
    return absl::StrCat("needs ", gpus, " CUDA device(s): ", count.status().message());
  if (*count < gpus)
    return absl::StrCat("needs ", gpus, " CUDA devices, this machine has ", *count);
  return "";
}

}  // namespace kvtier::test

// GTEST_SKIPs the calling test (or SetUp), saying why, unless `gpus` CUDA devices are usable.
#define KVTIER_SKIP_WITHOUT_CUDA_DEVICES(gpus)                                       \
  do {                                                                               \
    if (const std::string kvtier_missing = ::kvtier::test::MissingCudaDevices(gpus); \
        !kvtier_missing.empty()) {                                                   \
      GTEST_SKIP() << kvtier_missing;                                                \
    }                                                                                \
  } while (0)

#endif  // KVTIER_TESTS_CUDA_DEVICES_H_
