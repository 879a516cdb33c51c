// BlockAllocator: a fixed pool of block ids [0, num_blocks) with reference counts.
//
// A block is free (refcount 0) or held by one or more owners: sessions whose block tables name
// it and, for full blocks, the prefix index. Allocate hands out a free block with refcount 1;
// AddRef and Release move the count, and the block returns to the free list when it reaches 0.
// Every operation is O(1) (AllocateMany is O(n) in the blocks it returns) and checks its
// argument: an id out of range, or a Release/AddRef of a free block, is an error, never UB.
//
// Thread-compatible: const methods may run concurrently; mutating calls need external
// synchronization (the coordinator's metadata lock).
#ifndef KVTIER_CACHE_BLOCKS_BLOCK_ALLOCATOR_H_
#define KVTIER_CACHE_BLOCKS_BLOCK_ALLOCATOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/blocks/block_id.h"

namespace kvtier {

class BlockAllocator {
 public:
  // `num_blocks` must be >= 0 (callers validate their configuration first).
  explicit BlockAllocator(int32_t num_blocks);

  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  // A free block with refcount 1, or RESOURCE_EXHAUSTED.
  absl::StatusOr<BlockId> Allocate();

  // `count` free blocks, each with refcount 1, appended to `blocks`; all or nothing: on
  // RESOURCE_EXHAUSTED nothing is allocated.
  absl::Status AllocateMany(int32_t count, std::vector<BlockId>* blocks);

  // Adds an owner to a held block.
  absl::Status AddRef(BlockId block);

  // Drops an owner; the block is freed when its last owner goes. FAILED_PRECONDITION on a
  // block that is already free (a double free).
  absl::Status Release(BlockId block);

  // Owners of `block` (0 when free), or INVALID_ARGUMENT when out of range.
  absl::StatusOr<int32_t> RefCount(BlockId block) const;

  int32_t num_blocks() const { return static_cast<int32_t>(refcounts_.size()); }
  int32_t num_free() const { return static_cast<int32_t>(free_list_.size()); }
  int32_t num_used() const { return num_blocks() - num_free(); }

 private:
  absl::Status CheckHeld(BlockId block, const char* operation) const;

  std::vector<int32_t> refcounts_;
  std::vector<BlockId> free_list_;  // a stack: the most recently freed block is reused first
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_BLOCKS_BLOCK_ALLOCATOR_H_
