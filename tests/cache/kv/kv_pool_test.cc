// KvPool: shape validation and byte sizes; then, for each backend (CPU, and CUDA where a device
// is present, skipped with the reason printed elsewhere), WriteKv/ReadKv round trips of fresh
// random bytes at shuffled slots checked against a dense per-layer image of the pool, and
// argument errors that name the field and leave the stored data unchanged.
#include "cache/kv/kv_pool.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "cache/kv/cpu_kv_pool.h"
#include "cache/kv/cuda/cuda_kv_pool.h"
#include "cache/kv/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cuda_devices.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

// 3 layers x 8 blocks x 2 heads x 16 tokens x 64: 128 slots, 256 bytes per bf16 token.
KvPoolShape TestShape(DType dtype) {
  return KvPoolShape{/*num_layers=*/3,  /*num_kv_heads=*/2, /*head_dim=*/64,
                     /*block_size=*/16, /*num_blocks=*/8,   dtype};
}

std::string RandomBytes(int64_t count, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string bytes(count, '\0');
  for (char& c : bytes) c = static_cast<char>(byte(rng));
  return bytes;
}

// K and V of one layer as a host image: [num_slots][num_kv_heads][head_dim] bytes each, which
// is what ReadKv of every slot in order returns.
struct LayerImage {
  std::string k;
  std::string v;
};

void ExpectInvalidArgument(const absl::Status& status, const std::string& message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr(message));
}

enum class Backend { kCpu, kCuda };

class KvPoolTest : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kCuda) KVTIER_SKIP_WITHOUT_CUDA_DEVICES(1);
    absl::StatusOr<std::unique_ptr<KvPool>> pool = CreatePool(TestShape(DType::kBF16));
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
  }

  absl::StatusOr<std::unique_ptr<KvPool>> CreatePool(const KvPoolShape& shape) const {
    if (GetParam() == Backend::kCuda) return CreateCudaKvPool(shape, {});
    return CreateCpuKvPool(shape, {});
  }

  // An all-zero image per layer, as a fresh pool holds.
  static std::vector<LayerImage> ZeroImages(const KvPoolShape& shape) {
    const std::string zeros(shape.num_slots() * shape.token_bytes(), '\0');
    return std::vector<LayerImage>(shape.num_layers, LayerImage{zeros, zeros});
  }

  // Writes fresh random K/V to `slots` of `layer`, checks that ReadKv of the same slots returns
  // them, and records them in `image`.
  static void WriteRandom(KvPool& pool, int layer, const std::vector<int64_t>& slots,
                          std::mt19937_64& rng, LayerImage& image) {
    const int64_t token_bytes = pool.shape().token_bytes();
    const std::string k = RandomBytes(slots.size() * token_bytes, rng);
    const std::string v = RandomBytes(slots.size() * token_bytes, rng);
    ASSERT_TRUE(pool.WriteKv(layer, slots, k, v).ok());
    std::string k_read(k.size(), '\0');
    std::string v_read(v.size(), '\0');
    ASSERT_TRUE(pool.ReadKv(layer, slots, absl::MakeSpan(k_read), absl::MakeSpan(v_read)).ok());
    EXPECT_EQ(k_read, k);
    EXPECT_EQ(v_read, v);
    for (size_t i = 0; i < slots.size(); ++i) {
      image.k.replace(slots[i] * token_bytes, token_bytes, k, i * token_bytes, token_bytes);
      image.v.replace(slots[i] * token_bytes, token_bytes, v, i * token_bytes, token_bytes);
    }
  }

  // Reads every slot of `layer` and compares it with `image`.
  static void ExpectLayerIs(const KvPool& pool, int layer, const LayerImage& image) {
    std::vector<int64_t> all(pool.shape().num_slots());
    std::iota(all.begin(), all.end(), 0);
    std::string k(image.k.size(), '\0');
    std::string v(image.v.size(), '\0');
    ASSERT_TRUE(pool.ReadKv(layer, all, absl::MakeSpan(k), absl::MakeSpan(v)).ok());
    EXPECT_TRUE(k == image.k) << "layer " << layer << " K differs from what was written";
    EXPECT_TRUE(v == image.v) << "layer " << layer << " V differs from what was written";
  }

  std::unique_ptr<KvPool> pool_;  // TestShape(bf16)
};

TEST(KvPoolShapeTest, ValidateAcceptsLimits) {
  KvPoolShape shape = TestShape(DType::kF16);
  EXPECT_TRUE(shape.Validate().ok());
  shape.head_dim = 512;
  shape.block_size = 512;
  EXPECT_TRUE(shape.Validate().ok()) << shape.Validate();
  shape.num_layers = shape.num_kv_heads = shape.head_dim = shape.block_size = shape.num_blocks = 1;
  EXPECT_TRUE(shape.Validate().ok()) << shape.Validate();
}

TEST(KvPoolShapeTest, ValidateRejectsFieldsOutOfRangeNamingThem) {
  struct Case {
    const char* field;
    int KvPoolShape::*member;
    int value;
  };
  constexpr int kMin = std::numeric_limits<int>::min();
  const std::vector<Case> cases = {
      {"num_layers", &KvPoolShape::num_layers, 0},
      {"num_layers", &KvPoolShape::num_layers, -1},
      {"num_kv_heads", &KvPoolShape::num_kv_heads, 0},
      {"num_kv_heads", &KvPoolShape::num_kv_heads, kMin},
      {"head_dim", &KvPoolShape::head_dim, 0},
      {"head_dim", &KvPoolShape::head_dim, -64},
      {"head_dim", &KvPoolShape::head_dim, 513},
      {"block_size", &KvPoolShape::block_size, 0},
      {"block_size", &KvPoolShape::block_size, 513},
      {"num_blocks", &KvPoolShape::num_blocks, 0},
      {"num_blocks", &KvPoolShape::num_blocks, -3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.field, " = ", c.value));
    KvPoolShape shape = TestShape(DType::kBF16);
    shape.*c.member = c.value;
    const absl::Status status = shape.Validate();
    ExpectInvalidArgument(status, absl::StrCat(c.field, ": expected "));
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("got ", c.value)));
    EXPECT_EQ(CreateCpuKvPool(shape, {}).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(KvPoolShapeTest, ValidateRejectsPoolsTooLargeToAddress) {
  KvPoolShape shape = TestShape(DType::kF32);
  shape.num_layers = std::numeric_limits<int>::max();
  shape.num_blocks = std::numeric_limits<int>::max();
  ExpectInvalidArgument(shape.Validate(), "pool too large");
}

TEST(KvPoolShapeTest, ByteSizes) {
  const KvPoolShape bf16 = TestShape(DType::kBF16);
  EXPECT_EQ(bf16.num_slots(), 8 * 16);
  EXPECT_EQ(bf16.token_bytes(), 2 * 64 * 2);
  EXPECT_EQ(bf16.block_bytes(), 16 * 2 * 64 * 2);
  EXPECT_EQ(bf16.total_bytes(), 2 * 3 * 8 * 16 * 2 * 64 * 2);  // K+V x layers x blocks x ...

  const KvPoolShape fp32 = TestShape(DType::kF32);
  EXPECT_EQ(fp32.token_bytes(), 2 * 64 * 4);
  EXPECT_EQ(fp32.block_bytes(), 16 * 2 * 64 * 4);
  EXPECT_EQ(fp32.total_bytes(), 2 * 3 * 8 * 16 * 2 * 64 * 4);
}

// For each dtype: two rounds of writes to every layer at shuffled, scattered slots (the second
// round overwriting some of the first), each read back at once and finally every slot of
// every layer compared with the image: written tokens where written, zeros elsewhere, and no
// layer disturbed by another's writes at the same slots.
TEST_P(KvPoolTest, WriteReadRoundTripForEveryDType) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(DTypeName(dtype));
    const KvPoolShape shape = TestShape(dtype);
    absl::StatusOr<std::unique_ptr<KvPool>> pool = CreatePool(shape);
    ASSERT_TRUE(pool.ok()) << pool.status();
    std::vector<LayerImage> images = ZeroImages(shape);
    for (int layer = 0; layer < shape.num_layers; ++layer) {
      ASSERT_NO_FATAL_FAILURE(ExpectLayerIs(**pool, layer, images[layer]));  // zero-filled
    }

    std::vector<int64_t> slots(shape.num_slots());
    std::iota(slots.begin(), slots.end(), 0);
    for (int round = 0; round < 2; ++round) {
      std::shuffle(slots.begin(), slots.end(), rng);
      for (int layer = 0; layer < shape.num_layers; ++layer) {
        // About a third of the slots, the same ones in every layer of a round.
        const std::vector<int64_t> some(slots.begin(), slots.begin() + slots.size() / 3);
        ASSERT_NO_FATAL_FAILURE(WriteRandom(**pool, layer, some, rng, images[layer]));
      }
    }
    for (int layer = 0; layer < shape.num_layers; ++layer) {
      ASSERT_NO_FATAL_FAILURE(ExpectLayerIs(**pool, layer, images[layer]));
    }
  }
}

// Each bad write names its field, and neither it nor the matching ReadKv touches the data:
// every bad write includes slot 5, which holds known K/V in every layer.
TEST_P(KvPoolTest, BadArgumentsAreInvalidArgumentAndLeaveDataUnchanged) {
  std::mt19937_64 rng(std::random_device{}());
  const KvPoolShape& shape = pool_->shape();
  ASSERT_EQ(shape.token_bytes(), 256);
  ASSERT_EQ(shape.num_slots(), 128);
  std::vector<LayerImage> images = ZeroImages(shape);
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    ASSERT_NO_FATAL_FAILURE(WriteRandom(*pool_, layer, {5}, rng, images[layer]));
  }

  struct Case {
    int layer;
    std::vector<int64_t> slots;
    int64_t k_bytes;
    int64_t v_bytes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {3, {5}, 256, 256, "layer: expected 0..2, got 3"},
      {-1, {5}, 256, 256, "layer: expected 0..2, got -1"},
      {0, {5, -1}, 512, 512, "slots[1]: -1 out of range [0, 128)"},
      {1, {5, 7, 128}, 768, 768, "slots[2]: 128 out of range [0, 128)"},
      {2, {5, std::numeric_limits<int64_t>::max()}, 512, 512, "slots[1]: "},
      {0, {5}, 255, 256, "k: expected 256 bytes (1 tokens x 2 heads x 64 x bf16), got 255"},
      {1, {5}, 257, 256, "k: expected 256 bytes (1 tokens x 2 heads x 64 x bf16), got 257"},
      {2, {5, 6}, 512, 256, "v: expected 512 bytes (2 tokens x 2 heads x 64 x bf16), got 256"},
      {0, {5}, 256, 0, "v: expected 256 bytes (1 tokens x 2 heads x 64 x bf16), got 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    std::string k = RandomBytes(c.k_bytes, rng);
    std::string v = RandomBytes(c.v_bytes, rng);
    ExpectInvalidArgument(pool_->WriteKv(c.layer, c.slots, k, v), c.message);
    ExpectInvalidArgument(pool_->ReadKv(c.layer, c.slots, absl::MakeSpan(k), absl::MakeSpan(v)),
                          c.message);
    for (int layer = 0; layer < shape.num_layers; ++layer) {
      ASSERT_NO_FATAL_FAILURE(ExpectLayerIs(*pool_, layer, images[layer]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, KvPoolTest, testing::Values(Backend::kCpu, Backend::kCuda),
                         [](const testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kCpu ? "cpu" : "cuda";
                         });

}  // namespace
}  // namespace kvtier
