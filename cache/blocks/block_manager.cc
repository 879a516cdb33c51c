#include "cache/blocks/block_manager.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/container/flat_hash_set.h"
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

std::vector<BlockId> BlockManager::Match(absl::Span<const NamespaceId> namespaces, BlockId parent,
                                         absl::Span<const int32_t> tokens,
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
                                   std::vector<BlockId>* blocks, std::vector<NamespaceId>* evicted,
                                   const BlockQuota& quota) {
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
  const int64_t over = int64_t{OwnedBy(quota.owner)} + fresh - quota.max_blocks;
  const std::vector<BlockId> own =
      over > 0 ? OwnEvictable(quota.owner, matched) : std::vector<BlockId>();
  if (over > static_cast<int64_t>(own.size())) return CheckQuota(quota, matched, fresh);
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
  for (int64_t i = 0; i < over; ++i) {
    const NamespaceId ns = Evict(own[i]);
    if (evicted != nullptr) evicted->push_back(ns);
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
    state.owner = quota.owner;
    ++owned_[quota.owner];
    ++referenced_;
    blocks->push_back(block);
  }
  return absl::OkStatus();
}

absl::Status BlockManager::CheckQuota(const BlockQuota& quota, absl::Span<const BlockId> matched,
                                      int32_t fresh, int32_t releasing, int32_t uncovering) const {
  if (QuotaShortfall(quota, matched, fresh) - releasing - uncovering <= 0) {
    return absl::OkStatus();
  }
  const int32_t owned = OwnedBy(quota.owner) - releasing;
  const int64_t own = static_cast<int64_t>(OwnEvictable(quota.owner, matched).size()) + uncovering;
  return absl::ResourceExhaustedError(
      absl::StrCat("quota: ", fresh, " more blocks would make ", owned + fresh,
                   ", over the cap of ", quota.max_blocks, ", and only ", own,
                   " of those held are cached ones that can be evicted; end or close sessions"));
}

int64_t BlockManager::QuotaShortfall(const BlockQuota& quota, absl::Span<const BlockId> matched,
                                     int32_t fresh) const {
  const int64_t over = int64_t{OwnedBy(quota.owner)} + fresh - quota.max_blocks;
  if (over <= 0) return over;
  return over - static_cast<int64_t>(OwnEvictable(quota.owner, matched).size());
}

int32_t BlockManager::OwnedBy(NamespaceId owner) const {
  auto found = owned_.find(owner);
  return found == owned_.end() ? 0 : found->second;
}

std::vector<BlockId> BlockManager::OwnEvictable(NamespaceId owner,
                                                absl::Span<const BlockId> matched) const {
  const absl::flat_hash_set<BlockId> taken(matched.begin(), matched.end());
  std::vector<BlockId> roots;
  for (BlockId block : index_.InNamespace(owner)) {
    if (blocks_[block].refs == 0 && !taken.contains(block) && blocks_[block].owner == owner) {
      roots.push_back(block);
    }
  }
  // Under an unreferenced cached block lies nothing referenced (a holder holds a whole chain),
  // so all of them can go, leaves first; a matched block's descendants go before it is taken.
  std::vector<BlockId> ordered = index_.WithDescendants(roots);
  ordered.erase(std::remove_if(ordered.begin(), ordered.end(),
                               [&](BlockId block) { return taken.contains(block); }),
                ordered.end());
  return ordered;
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
    Freed(block);
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
    Freed(block);
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
  return Evict(victim);
}

NamespaceId BlockManager::Evict(BlockId block) {
  if (candidate_[block]) {
    candidate_[block] = false;
    policy_->RemoveCandidate(block);
  }
  const BlockId parent = index_.Parent(block);
  const NamespaceId ns = index_.Namespace(block);
  index_.Erase(block);
  policy_->Forget(block);
  --cached_unreferenced_;
  ++evicted_;
  Freed(block);
  if (parent != kNoBlock) UpdateCandidate(parent);
  return ns;
}

void BlockManager::Freed(BlockId block) {
  free_.push_back(block);
  auto owned = owned_.find(blocks_[block].owner);
  if (owned != owned_.end() && --owned->second == 0) owned_.erase(owned);
}

}  // namespace kvtier
