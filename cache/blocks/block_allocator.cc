#include "cache/blocks/block_allocator.h"

#include <algorithm>
#include <cassert>

#include "absl/strings/str_cat.h"

namespace kvtier {

BlockAllocator::BlockAllocator(int32_t num_blocks) : refcounts_(std::max(num_blocks, 0), 0) {
  assert(num_blocks >= 0);
  free_list_.reserve(refcounts_.size());
  // Pushed in reverse so that a fresh allocator hands out 0, 1, 2, ...
  for (BlockId block = this->num_blocks() - 1; block >= 0; --block) free_list_.push_back(block);
}

absl::StatusOr<BlockId> BlockAllocator::Allocate() {
  if (free_list_.empty()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no free KV blocks: all ", num_blocks(), " are in use"));
  }
  const BlockId block = free_list_.back();
  free_list_.pop_back();
  refcounts_[block] = 1;
  return block;
}

absl::Status BlockAllocator::AllocateMany(int32_t count, std::vector<BlockId>* blocks) {
  if (count < 0) return absl::InvalidArgumentError(absl::StrCat("count: negative (", count, ")"));
  if (count > num_free()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("need ", count, " free KV blocks, have ", num_free(), " of ", num_blocks()));
  }
  for (int32_t i = 0; i < count; ++i) blocks->push_back(*Allocate());
  return absl::OkStatus();
}

absl::Status BlockAllocator::AddRef(BlockId block) {
  if (absl::Status held = CheckHeld(block, "AddRef"); !held.ok()) return held;
  ++refcounts_[block];
  return absl::OkStatus();
}

absl::Status BlockAllocator::Release(BlockId block) {
  if (absl::Status held = CheckHeld(block, "Release"); !held.ok()) return held;
  if (--refcounts_[block] == 0) free_list_.push_back(block);
  return absl::OkStatus();
}

absl::StatusOr<int32_t> BlockAllocator::RefCount(BlockId block) const {
  if (block < 0 || block >= num_blocks()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block id ", block, " out of range [0, ", num_blocks(), ")"));
  }
  return refcounts_[block];
}

absl::Status BlockAllocator::CheckHeld(BlockId block, const char* operation) const {
  absl::StatusOr<int32_t> refcount = RefCount(block);
  if (!refcount.ok()) return refcount.status();
  if (*refcount == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(operation, " of block ", block, ", which is free (double free?)"));
  }
  return absl::OkStatus();
}

}  // namespace kvtier
