// BlockAllocator: ids handed out, exhaustion, reference counting, double frees and bad ids as
// errors that leave the allocator intact, all-or-nothing AllocateMany, and a random sequence of
// operations checked step by step against a map of refcounts.
#include "cache/blocks/block_allocator.h"

#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kNumBlocks = 8;

void ExpectError(const absl::Status& status, absl::StatusCode code, absl::string_view message) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(status.message(), HasSubstr(message));
}

class BlockAllocatorTest : public testing::Test {
 protected:
  // Allocates `count` blocks one at a time, expecting each to succeed.
  std::vector<BlockId> AllocateBlocks(int count) {
    std::vector<BlockId> blocks;
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<BlockId> block = allocator_.Allocate();
      EXPECT_TRUE(block.ok()) << block.status();
      if (block.ok()) blocks.push_back(*block);
    }
    return blocks;
  }

  // Allocates until the allocator runs out; returns what it handed out.
  std::vector<BlockId> AllocateUntilExhausted() {
    std::vector<BlockId> blocks;
    for (absl::StatusOr<BlockId> block = allocator_.Allocate(); block.ok();
         block = allocator_.Allocate()) {
      blocks.push_back(*block);
      // More ids than exist: a bug the caller's checks report; stop rather than loop forever.
      if (blocks.size() > static_cast<size_t>(kNumBlocks)) break;
    }
    return blocks;
  }

  void ExpectRefCount(BlockId block, int32_t expected) {
    absl::StatusOr<int32_t> refcount = allocator_.RefCount(block);
    ASSERT_TRUE(refcount.ok()) << refcount.status();
    EXPECT_EQ(*refcount, expected) << "block " << block;
  }

  void ExpectUsed(int32_t used) {
    EXPECT_EQ(allocator_.num_blocks(), kNumBlocks);
    EXPECT_EQ(allocator_.num_used(), used);
    EXPECT_EQ(allocator_.num_free(), kNumBlocks - used);
  }

  BlockAllocator allocator_{kNumBlocks};
};

TEST_F(BlockAllocatorTest, FreshAllocatorHandsOutDistinctIdsInRange) {
  ExpectUsed(0);
  const std::vector<BlockId> blocks = AllocateBlocks(kNumBlocks);
  ASSERT_EQ(blocks.size(), static_cast<size_t>(kNumBlocks));
  EXPECT_EQ(std::set<BlockId>(blocks.begin(), blocks.end()).size(), blocks.size());
  for (BlockId block : blocks) {
    EXPECT_GE(block, 0);
    EXPECT_LT(block, kNumBlocks);
    ExpectRefCount(block, 1);
  }
  ExpectUsed(kNumBlocks);
}

TEST_F(BlockAllocatorTest, ExhaustionIsResourceExhausted) {
  AllocateBlocks(kNumBlocks);
  ExpectError(allocator_.Allocate().status(), absl::StatusCode::kResourceExhausted,
              "no free KV blocks: all 8 are in use");
  ExpectUsed(kNumBlocks);

  BlockAllocator empty(0);
  EXPECT_EQ(empty.num_free(), 0);
  EXPECT_EQ(empty.Allocate().status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(BlockAllocatorTest, ReleaseToZeroFreesTheBlockForReuse) {
  const std::vector<BlockId> blocks = AllocateBlocks(kNumBlocks);
  const BlockId released = blocks[3];
  ASSERT_TRUE(allocator_.Release(released).ok());
  ExpectRefCount(released, 0);
  ExpectUsed(kNumBlocks - 1);

  absl::StatusOr<BlockId> reused = allocator_.Allocate();
  ASSERT_TRUE(reused.ok()) << reused.status();
  EXPECT_EQ(*reused, released);
  ExpectRefCount(released, 1);
  ExpectUsed(kNumBlocks);
}

TEST_F(BlockAllocatorTest, BlockWithTwoOwnersSurvivesOneRelease) {
  const BlockId block = AllocateBlocks(1)[0];
  ASSERT_TRUE(allocator_.AddRef(block).ok());
  ExpectRefCount(block, 2);
  ExpectUsed(1);  // a second owner is not a second block

  ASSERT_TRUE(allocator_.Release(block).ok());
  ExpectRefCount(block, 1);
  ExpectUsed(1);

  ASSERT_TRUE(allocator_.Release(block).ok());
  ExpectRefCount(block, 0);
  ExpectUsed(0);
}

TEST_F(BlockAllocatorTest, DoubleFreeIsFailedPreconditionAndKeepsFreeListIntact) {
  const std::vector<BlockId> held = AllocateBlocks(3);
  ASSERT_TRUE(allocator_.Release(held[1]).ok());
  const int32_t free_before = allocator_.num_free();

  ExpectError(allocator_.Release(held[1]), absl::StatusCode::kFailedPrecondition, "double free");
  ExpectError(allocator_.AddRef(held[1]), absl::StatusCode::kFailedPrecondition, "free");
  EXPECT_EQ(allocator_.num_free(), free_before);
  ExpectRefCount(held[1], 0);

  // Every free block comes out exactly once, never one still held.
  const std::vector<BlockId> rest = AllocateUntilExhausted();
  EXPECT_EQ(rest.size(), static_cast<size_t>(free_before));
  std::set<BlockId> all(rest.begin(), rest.end());
  EXPECT_EQ(all.size(), rest.size()) << "an id was handed out twice";
  EXPECT_FALSE(all.contains(held[0]));
  EXPECT_FALSE(all.contains(held[2]));
  ExpectUsed(kNumBlocks);
}

TEST_F(BlockAllocatorTest, OutOfRangeIdsAreInvalidArgument) {
  AllocateBlocks(2);
  for (BlockId bad : {-1, kNumBlocks, kNumBlocks + 100, std::numeric_limits<BlockId>::min(),
                      std::numeric_limits<BlockId>::max()}) {
    SCOPED_TRACE(absl::StrCat("block ", bad));
    const std::string message = absl::StrCat("block id ", bad, " out of range [0, 8)");
    ExpectError(allocator_.AddRef(bad), absl::StatusCode::kInvalidArgument, message);
    ExpectError(allocator_.Release(bad), absl::StatusCode::kInvalidArgument, message);
    ExpectError(allocator_.RefCount(bad).status(), absl::StatusCode::kInvalidArgument, message);
  }
  ExpectUsed(2);
}

TEST_F(BlockAllocatorTest, AllocateManyIsAllOrNothing) {
  AllocateBlocks(kNumBlocks - 3);
  std::vector<BlockId> blocks = {42};
  ExpectError(allocator_.AllocateMany(4, &blocks), absl::StatusCode::kResourceExhausted,
              "need 4 free KV blocks, have 3 of 8");
  EXPECT_THAT(blocks, testing::ElementsAre(42));
  ExpectUsed(kNumBlocks - 3);

  ASSERT_TRUE(allocator_.AllocateMany(0, &blocks).ok());
  EXPECT_THAT(blocks, testing::ElementsAre(42));

  ASSERT_TRUE(allocator_.AllocateMany(3, &blocks).ok());
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[0], 42);
  EXPECT_EQ(std::set<BlockId>(blocks.begin() + 1, blocks.end()).size(), 3u);
  for (size_t i = 1; i < blocks.size(); ++i) ExpectRefCount(blocks[i], 1);
  ExpectUsed(kNumBlocks);
}

TEST_F(BlockAllocatorTest, AllocateManyNegativeCountIsInvalidArgument) {
  std::vector<BlockId> blocks;
  ExpectError(allocator_.AllocateMany(-1, &blocks), absl::StatusCode::kInvalidArgument,
              "count: negative (-1)");
  EXPECT_TRUE(blocks.empty());
  ExpectUsed(0);
}

// Random Allocate / AllocateMany / AddRef / Release (including double frees) against a model:
// the refcount of every held block. Each step checks what the allocator returned and then its
// whole visible state.
TEST_F(BlockAllocatorTest, RandomOperationsMatchReferenceModel) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  std::map<BlockId, int32_t> model;  // held blocks only

  auto pick = [&rng](int size) { return std::uniform_int_distribution<int>(0, size - 1)(rng); };
  auto random_held = [&] { return std::next(model.begin(), pick(model.size()))->first; };
  auto random_free = [&] {
    std::vector<BlockId> free;
    for (BlockId b = 0; b < kNumBlocks; ++b) {
      if (!model.contains(b)) free.push_back(b);
    }
    return free[pick(free.size())];
  };
  auto take = [&](BlockId block) {
    ASSERT_GE(block, 0);
    ASSERT_LT(block, kNumBlocks);
    ASSERT_FALSE(model.contains(block)) << "allocated block " << block << ", which is held";
    model[block] = 1;
  };

  for (int step = 0; step < 5000; ++step) {
    SCOPED_TRACE(absl::StrCat("step ", step));
    const int free_count = kNumBlocks - static_cast<int>(model.size());
    switch (pick(5)) {
      case 0: {
        absl::StatusOr<BlockId> block = allocator_.Allocate();
        if (free_count == 0) {
          ASSERT_EQ(block.status().code(), absl::StatusCode::kResourceExhausted);
        } else {
          ASSERT_TRUE(block.ok()) << block.status();
          take(*block);
        }
        break;
      }
      case 1: {
        const int count = pick(4);
        std::vector<BlockId> blocks;
        absl::Status status = allocator_.AllocateMany(count, &blocks);
        if (count > free_count) {
          ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
          ASSERT_TRUE(blocks.empty());
        } else {
          ASSERT_TRUE(status.ok()) << status;
          ASSERT_EQ(blocks.size(), static_cast<size_t>(count));
          for (BlockId block : blocks) take(block);
        }
        break;
      }
      case 2:
        if (model.empty()) break;
        {
          const BlockId block = random_held();
          ASSERT_TRUE(allocator_.AddRef(block).ok());
          ++model[block];
        }
        break;
      case 3:
        if (model.empty()) break;
        {
          const BlockId block = random_held();
          ASSERT_TRUE(allocator_.Release(block).ok());
          if (--model[block] == 0) model.erase(block);
        }
        break;
      case 4:
        if (free_count == 0) break;
        ASSERT_EQ(allocator_.Release(random_free()).code(), absl::StatusCode::kFailedPrecondition);
        break;
    }
    if (HasFatalFailure()) return;

    ASSERT_EQ(allocator_.num_used(), static_cast<int32_t>(model.size()));
    ASSERT_EQ(allocator_.num_free(), kNumBlocks - static_cast<int32_t>(model.size()));
    for (BlockId block = 0; block < kNumBlocks; ++block) {
      const auto it = model.find(block);
      ASSERT_EQ(*allocator_.RefCount(block), it == model.end() ? 0 : it->second)
          << "block " << block;
    }
  }
}

}  // namespace
}  // namespace kvtier
