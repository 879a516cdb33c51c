#include "cache/blocks/block_manager.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kvtier {

int64_t BlockManager::MetadataBytes(int64_t num_blocks, int64_t block_size) {
  // NOTE: the built-in policies keep at most 16 bytes per block up front.
  constexpr int64_t kPolicyBytesPerBlock = 32;
  return num_blocks * (static_cast<int64_t>(sizeof(Block) + sizeof(BlockId)) +
                       PrefixIndex::BytesPerBlock(block_size) + kPolicyBytesPerBlock);
}

BlockManager::BlockManager(int32_t num_blocks, int32_t block_size,
                           std::unique_ptr<EvictionPolicy> policy)
    : block_size_(block_size),
      policy_(std::move(policy)),
      blocks_(num_blocks),
      candidate_(num_blocks),
      index_(num_blocks, block_size) {
  for (BlockId block = 0; block < num_blocks; ++block) free_.push_back(block);
}

std::vector<BlockId> BlockManager::Match(absl::Span<const NamespaceId> namespaces,
                                         BlockId parent, absl::Span<const int32_t> tokens,
                                         int32_t max_blocks) const {
  std::vector<BlockId> matched;
  const int32_t full = static_cast<int32_t>(tokens.size()) / block_size_;
  for (int32_t i = 0; i < std::min(full, max_blocks); ++i) {
    const absl::Span<const int32_t> block_tokens = tokens.subspan(i * block_size_, block_size_);
    BlockId block = kNoBlock;
    for (NamespaceId ns : namespaces) {
      block = index_.Find(ns, parent, block_tokens);
      if (block != kNoBlock) break;
    }
    if (block == kNoBlock) break;
    matched.push_back(block);
    parent = block;
  }
  return matched;
}

absl::Status BlockManager::Reserve(absl::Span<const BlockId> matched, int32_t fresh,
                                   std::vector<BlockId>* blocks,
                                   std::vector<NamespaceId>* evicted) {
  int32_t revived = 0;
  for (size_t i = 0; i < matched.size(); ++i) {
    const BlockId block = matched[i];
    if (block < 0 || block >= num_blocks() || !index_.Contains(block)) {
      return absl::InvalidArgumentError(
          absl::StrCat("matched[", i, "]: block ", block, " is not a cached block"));
    }
    const BlockId parent = index_.Parent(block);
    if (i > 0 ? parent != matched[i - 1] : parent != kNoBlock && blocks_[parent].refs == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("matched[", i, "]: block ", block,
                       " does not continue a held chain (its parent is ", parent, ")"));
    }
    revived += blocks_[block].refs == 0 ? 1 : 0;
  }
  if (fresh < 0) return absl::InvalidArgumentError(absl::StrCat("fresh: negative (", fresh, ")"));
  if (fresh > Available() - revived) {
    return absl::ResourceExhaustedError(
        absl::StrCat("need ", fresh, " more blocks, ", Available() - revived, " of ", num_blocks(),
                     " are free or evictable (", static_cast<int32_t>(free_.size()), " free, ",
                     cached_unreferenced_ - revived, " cached)"));
  }
  for (BlockId block : matched) {
    Block& state = blocks_[block];
    if (state.refs++ == 0) {
      --cached_unreferenced_;
      ++referenced_;
    }
    UpdateCandidate(block);
    policy_->Touch(block);
    blocks->push_back(block);
  }
  for (int32_t i = 0; i < fresh; ++i) {
    if (free_.empty()) {
      const NamespaceId ns = EvictOne();
      if (evicted != nullptr) evicted->push_back(ns);
    }
    const BlockId block = free_.front();
    free_.pop_front();
    Block& state = blocks_[block];
    state.refs = 1;
    ++state.generation;
    ++referenced_;
    blocks->push_back(block);
  }
  return absl::OkStatus();
}

bool BlockManager::Cache(BlockId block, NamespaceId ns, BlockId parent,
                         absl::Span<const int32_t> tokens) {
  if (block < 0 || block >= num_blocks() || blocks_[block].refs == 0 || index_.Contains(block) ||
      static_cast<int32_t>(tokens.size()) != block_size_ || parent == block ||
      (parent != kNoBlock && (parent < 0 || parent >= num_blocks() || blocks_[parent].refs == 0))) {
    return false;
  }
  if (!index_.Insert(block, ns, parent, tokens)) return false;
  policy_->Touch(block);
  if (parent != kNoBlock) UpdateCandidate(parent);
  return true;
}

absl::Status BlockManager::CheckId(BlockId block) const {
  if (block >= 0 && block < num_blocks()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("block: ", block, " out of range [0, ", num_blocks(), ")"));
}

absl::Status BlockManager::Share(absl::Span<const BlockId> blocks) {
  for (BlockId block : blocks) {
    if (absl::Status status = CheckId(block); !status.ok()) return status;
    if (blocks_[block].refs == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("block ", block, " is not referenced: only held blocks can be shared"));
    }
  }
  for (BlockId block : blocks) ++blocks_[block].refs;
  return absl::OkStatus();
}

std::vector<BlockId> BlockManager::CachedUnder(NamespaceId ns,
                                               absl::Span<const int32_t> prefix) const {
  if (prefix.empty()) return {};
  // The full blocks strictly before the one holding the prefix's last token must be cached.
  const int32_t before = static_cast<int32_t>((prefix.size() - 1) / block_size_);
  const std::vector<BlockId> chain = Match({ns}, kNoBlock, prefix, before);
  if (static_cast<int32_t>(chain.size()) < before) return {};
  const BlockId parent = chain.empty() ? kNoBlock : chain.back();
  return index_.Extending(ns, parent, prefix.subspan(int64_t{before} * block_size_));
}

absl::StatusOr<int32_t> BlockManager::Revoke(absl::Span<const BlockId> blocks,
                                             std::vector<BlockId>* revoked,
                                             std::vector<uint64_t>* generations) {
  std::vector<BlockId> cached;
  std::vector<BlockId> uncached;
  for (BlockId block : blocks) {
    if (absl::Status status = CheckId(block); !status.ok()) return status;
    (index_.Contains(block) ? cached : uncached).push_back(block);
  }
  // The cached ones with what lies under them, children first (as Erase needs), then the rest.
  std::vector<BlockId> all = index_.WithDescendants(cached);
  const size_t num_cached = all.size();
  all.insert(all.end(), uncached.begin(), uncached.end());
  for (BlockId block : all) {
    if (blocks_[block].refs > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("block ", block, " is referenced: release it before revoking it"));
    }
  }
  std::vector<BlockId> parents;  // of the erased blocks: they may have become evictable
  for (size_t i = 0; i < num_cached; ++i) {
    const BlockId block = all[i];
    if (candidate_[block]) {
      candidate_[block] = false;
      policy_->RemoveCandidate(block);
    }
    parents.push_back(index_.Parent(block));
    index_.Erase(block);
    policy_->Forget(block);
    --cached_unreferenced_;
    free_.push_back(block);
  }
  for (BlockId parent : parents) {
    if (parent != kNoBlock && index_.Contains(parent)) UpdateCandidate(parent);
  }
  std::vector<bool> done(blocks_.size());
  for (BlockId block : all) {
    if (done[block]) continue;
    done[block] = true;
    revoked->push_back(block);
    generations->push_back(++blocks_[block].generation);
  }
  return static_cast<int32_t>(num_cached);
}

absl::Status BlockManager::Release(BlockId block) {
  if (absl::Status status = CheckId(block); !status.ok()) return status;
  Block& state = blocks_[block];
  if (state.refs == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("block ", block, " is not referenced (a double release)"));
  }
  if (--state.refs > 0) return absl::OkStatus();
  --referenced_;
  if (index_.Contains(block)) {
    ++cached_unreferenced_;
    UpdateCandidate(block);
  } else {
    free_.push_back(block);
  }
  return absl::OkStatus();
}

BlockCounts BlockManager::counts() const {
  return BlockCounts{.free = static_cast<int32_t>(free_.size()),
                     .referenced = referenced_,
                     .cached = cached_unreferenced_,
                     .evicted = evicted_};
}

bool BlockManager::Evictable(BlockId block) const {
  return blocks_[block].refs == 0 && index_.Contains(block) && index_.CachedChildren(block) == 0;
}

void BlockManager::UpdateCandidate(BlockId block) {
  const bool evictable = Evictable(block);
  if (evictable == candidate_[block]) return;
  candidate_[block] = evictable;
  if (evictable) {
    policy_->AddCandidate(block);
  } else {
    policy_->RemoveCandidate(block);
  }
}

NamespaceId BlockManager::EvictOne() {
  // NOTE: held chains (see the header) make a candidate exist whenever an unreferenced cached
  // block does, which Reserve checked.
  assert(cached_unreferenced_ > 0);
  const BlockId victim = policy_->PopVictim();
  candidate_[victim] = false;
  const BlockId parent = index_.Parent(victim);
  const NamespaceId ns = index_.Namespace(victim);
  index_.Erase(victim);
  policy_->Forget(victim);
  --cached_unreferenced_;
  ++evicted_;
  free_.push_back(victim);
  if (parent != kNoBlock) UpdateCandidate(parent);
  return ns;
}

}  // namespace kvtier
