// PoolDevice: --device parsing, and the device check ShardServer::Start makes, which on a
// machine without a usable GPU must refuse CUDA with the reason, and on one with a GPU must
// refuse only ordinals the machine lacks.
#include "shard/pool_device.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/kv/cuda/cuda_kv_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shard/shard_server.h"
#include "tests/cuda_devices.h"
#include "tests/shard/test_shard.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

TEST(PoolDeviceTest, ParsesCpuAndCudaOrdinals) {
  absl::StatusOr<PoolDevice> device = ParsePoolDevice("--device", "cpu");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(device->kind, PoolDevice::Kind::kCpu);
  EXPECT_EQ(device->Name(), "cpu");

  for (const auto& [text, ordinal] :
       {std::pair<std::string, int>{"cuda", 0}, {"cuda:0", 0}, {"cuda:3", 3}, {"cuda:12", 12}}) {
    device = ParsePoolDevice("--device", text);
    ASSERT_TRUE(device.ok()) << text << ": " << device.status();
    EXPECT_EQ(device->kind, PoolDevice::Kind::kCuda);
    EXPECT_EQ(device->cuda_ordinal, ordinal);
    EXPECT_EQ(device->Name(), "cuda:" + std::to_string(ordinal));
  }
}

TEST(PoolDeviceTest, RejectsOtherTextNamingTheField) {
  for (const char* text : {"", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "CPU", "cuda0"}) {
    const absl::Status status = ParsePoolDevice("--device", text).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(status.message(), HasSubstr("--device: expected cpu, cuda or cuda:N, got \""));
  }
}

TEST(PoolDeviceTest, CpuIsAlwaysUsable) {
  EXPECT_TRUE(CheckPoolDevice("device", PoolDevice{}).ok());
}

TEST(PoolDeviceTest, CudaWithoutAUsableDeviceIsRefusedWithTheReason) {
  const absl::StatusOr<int> devices = CudaDeviceCount();
  if (devices.ok()) GTEST_SKIP() << "a CUDA device is present (" << *devices << ")";
  const PoolDevice cuda{PoolDevice::Kind::kCuda, 0};
  const absl::Status status = CheckPoolDevice("device", cuda);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("device: cuda:0 is not usable: "));
  EXPECT_THAT(status.message(), HasSubstr(devices.status().message()));

  ShardServerOptions options = TestShardOptions();
  options.device = cuda;
  EXPECT_EQ(ShardServer::Start(options).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PoolDeviceTest, CudaOrdinalBeyondTheMachineIsInvalid) {
  KVTIER_SKIP_WITHOUT_CUDA_DEVICES(1);
  const absl::StatusOr<int> devices = CudaDeviceCount();
  EXPECT_TRUE(CheckPoolDevice("device", {PoolDevice::Kind::kCuda, *devices - 1}).ok());
  const absl::Status status = CheckPoolDevice("device", {PoolDevice::Kind::kCuda, *devices});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("does not exist"));
}

}  // namespace
}  // namespace kvtier
