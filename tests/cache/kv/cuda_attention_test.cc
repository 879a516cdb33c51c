// The CUDA backend: its kernels on the attention grid (attention_grid.h), the same grid and
// reference as the CPU's, and the backend's own argument and device checks. Always compiled;
// the cases that need a GPU skip with the reason where there is none, or where this build has
// no CUDA backend.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/kv/cpu_kv_pool.h"
#include "cache/kv/cuda/cuda_kv_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cache/kv/attention_grid.h"
#include "tests/cuda_devices.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

class CudaAttentionTest : public test::AttentionGridTest {
 protected:
  void SetUp() override { KVTIER_SKIP_WITHOUT_CUDA_DEVICES(1); }

  std::vector<test::PoolUnderTest> MakePools(const KvPoolShape& shape) override {
    std::vector<test::PoolUnderTest> pools;
    absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCudaKvPool(shape, {.device = 0});
    EXPECT_TRUE(pool.ok()) << pool.status();
    if (pool.ok()) pools.push_back({"cuda:0", *std::move(pool)});
    return pools;
  }
};

TEST_P(CudaAttentionTest, MatchesDenseReference) { RunGridCase("cuda"); }

INSTANTIATE_TEST_SUITE_P(Grid, CudaAttentionTest, test::AttentionGrid(), test::AttentionGridName);

const KvPoolShape kShape{/*num_layers=*/2,  /*num_kv_heads=*/2, /*head_dim=*/128,
                         /*block_size=*/16, /*num_blocks=*/8,   DType::kBF16};

TEST(CudaKvPoolTest, RejectsHeadDimsTheKernelsLack) {
  KvPoolShape shape = kShape;
  shape.head_dim = 40;
  const absl::Status status = CreateCudaKvPool(shape, {}).status();
  if (!CudaBackendBuilt()) {
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    return;
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("head_dim: the CUDA kernels are built for 64, 128 or "
                                          "256, got 40"));
}

TEST(CudaKvPoolTest, WithoutADeviceSaysWhy) {
  const absl::StatusOr<int> devices = CudaDeviceCount();
  if (devices.ok()) GTEST_SKIP() << "a CUDA device is present (" << *devices << ")";
  EXPECT_EQ(devices.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(devices.status().message().empty());
  const absl::Status status = CreateCudaKvPool(kShape, {}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(status.message(), devices.status().message());
}

TEST(CudaKvPoolTest, RejectsADeviceOrdinalOutOfRange) {
  KVTIER_SKIP_WITHOUT_CUDA_DEVICES(1);
  const int devices = *CudaDeviceCount();
  for (int device : {-1, devices}) {
    const absl::Status status = CreateCudaKvPool(kShape, {.device = device}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr("device: expected cuda:0..cuda:"));
  }
}

TEST(CudaKvPoolTest, TooLargeAPoolIsResourceExhausted) {
  KVTIER_SKIP_WITHOUT_CUDA_DEVICES(1);
  KvPoolShape shape = kShape;
  shape.num_blocks = 1 << 30;  // 2 layers x 2 x 8 KiB a block: 32 TiB
  const absl::Status status = CreateCudaKvPool(shape, {}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("cudaMalloc"));
  // The failure left the device usable.
  EXPECT_TRUE(CreateCudaKvPool(kShape, {}).ok());
}

TEST(CudaKvPoolTest, MemoryOfACudaPoolDescribesItsLayout) {
  KVTIER_SKIP_WITHOUT_CUDA_DEVICES(1);
  absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCudaKvPool(kShape, {});
  ASSERT_TRUE(pool.ok()) << pool.status();
  const absl::StatusOr<CudaPoolMemory> memory = CudaPoolMemoryOf(**pool);
  ASSERT_TRUE(memory.ok()) << memory.status();
  EXPECT_EQ(memory->device, 0);
  EXPECT_NE(memory->slab, nullptr);
  EXPECT_EQ(memory->block_bytes, kShape.block_bytes());
  EXPECT_EQ(memory->layer_bytes, kShape.block_bytes() * kShape.num_blocks);
}

TEST(CudaKvPoolTest, MemoryOfAHostPoolIsFailedPrecondition) {
  absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCpuKvPool(kShape, {});
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(CudaPoolMemoryOf(**pool).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kvtier
