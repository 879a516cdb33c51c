#include "shard/pool_device.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cache/kv/cpu_kv_pool.h"
#include "cache/kv/cuda/cuda_kv_pool.h"

namespace kvtier {

std::string PoolDevice::Name() const {
  return kind == Kind::kCpu ? "cpu" : absl::StrCat("cuda:", cuda_ordinal);
}

absl::StatusOr<PoolDevice> ParsePoolDevice(absl::string_view field, absl::string_view text) {
  PoolDevice device;
  if (text == "cpu") return device;
  device.kind = PoolDevice::Kind::kCuda;
  if (text == "cuda") return device;
  absl::string_view ordinal = text;
  if (absl::ConsumePrefix(&ordinal, "cuda:") && absl::SimpleAtoi(ordinal, &device.cuda_ordinal) &&
      device.cuda_ordinal >= 0) {
    return device;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": expected cpu, cuda or cuda:N, got \"", text, "\""));
}

absl::Status CheckPoolDevice(absl::string_view field, const PoolDevice& device) {
  if (device.kind == PoolDevice::Kind::kCpu) return absl::OkStatus();
  absl::StatusOr<int> count = CudaDeviceCount();
  if (!count.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": ", device.Name(), " is not usable: ", count.status().message()));
  }
  if (device.cuda_ordinal >= *count) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", device.Name(), " does not exist; this machine has cuda:0..", *count - 1));
  }
  return absl::OkStatus();
}

PoolFactory PoolFactoryFor(const PoolDevice& device, ThreadPool* threads) {
  if (device.kind == PoolDevice::Kind::kCuda) {
    return [ordinal = device.cuda_ordinal](const KvPoolShape& shape) {
      return CreateCudaKvPool(shape, {.device = ordinal});
    };
  }
  return
      [threads](const KvPoolShape& shape) { return CreateCpuKvPool(shape, {.threads = threads}); };
}

}  // namespace kvtier
