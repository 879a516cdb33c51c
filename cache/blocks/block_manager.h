// BlockManager: every block of one model's global block id space, each exactly one of
//   free        no content; handed out oldest-freed first;
//   referenced  in the block table of one or more sessions (refcount > 0), cached or not;
//   cached      unreferenced, with K/V other sessions may match (prefix_index.h), kept until
//               evicted and revived by a match.
// A referenced block is never evicted or freed. When free blocks run out, Reserve evicts
// cached ones in the order of the EvictionPolicy, leaves first (never a block whose cached
// child is still there).
//
// Generations: every time a block is handed out fresh its generation grows, and the
// coordinator signs it into leases, so shards refuse a lease naming a block that has since
// been reused. A cached block keeps its generation while shared and revived.
//
// Owners and quotas: a block handed out fresh is owned by the namespace Reserve names (a tenant's
// in one model) until it is free again, shared or cached or not. A BlockQuota caps how many
// blocks a namespace owns: Reserve past it first evicts the namespace's own cached blocks
// (leaves first), never another's, and fails with RESOURCE_EXHAUSTED when those are not enough.
//
// A block becomes matchable only through Cache, which the coordinator calls once the block's
// K/V is committed (written on every shard, for every layer).
//
// Whoever holds a cached block holds its whole chain (a session's block table is a chain):
// Reserve and Cache check that matched blocks and a newly cached block's parent continue a
// held chain, and a holder releases its chain whole, between any two other calls. So every
// unreferenced cached block is a leaf or an ancestor of one, and all of them can be evicted.
//
// Thread-compatible: the owner serializes calls (the coordinator's metadata lock). Every
// method checks its arguments: a bad id or a release of an unreferenced block is an error
// that changes nothing, never undefined behavior.
#ifndef KVTIER_CACHE_BLOCKS_BLOCK_MANAGER_H_
#define KVTIER_CACHE_BLOCKS_BLOCK_MANAGER_H_

#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cache/blocks/block_id.h"
#include "cache/blocks/eviction_policy.h"
#include "cache/blocks/prefix_index.h"

namespace kvtier {

// At most `max_blocks` owned by `owner` (see above); the default: no cap.
struct BlockQuota {
  NamespaceId owner = 0;
  int32_t max_blocks = std::numeric_limits<int32_t>::max();
};

struct BlockCounts {
  int32_t free = 0;
  int32_t referenced = 0;
  int32_t cached = 0;   // unreferenced cached blocks (evictable)
  int64_t evicted = 0;  // since creation
};

class BlockManager {
 public:
  // `num_blocks` >= 1 and `block_size` >= 1 (callers validate their configuration first).
  BlockManager(int32_t num_blocks, int32_t block_size, std::unique_ptr<EvictionPolicy> policy);
  // About the bytes such a manager allocates up front (its blocks, free list, prefix index
  // and eviction policy): for a caller to check against its memory limit before building one.
  static int64_t MetadataBytes(int64_t num_blocks, int64_t block_size);

  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  // The longest chain of cached blocks holding the full blocks of `tokens` (at most
  // `max_blocks` of them) after `parent` (kNoBlock: a chain's start; else a cached block),
  // each block in the first of `namespaces` that has it. Changes nothing; Reserve takes them.
  std::vector<BlockId> Match(absl::Span<const NamespaceId> namespaces, BlockId parent,
                             absl::Span<const int32_t> tokens, int32_t max_blocks) const;

  // All or nothing: adds a reference to each of `matched` (a chain of cached blocks as Match
  // returned it, after a held parent or none; counted as used) and appends them, then `fresh`
  // newly allocated blocks (refcount 1, generation raised), to `blocks`. Evicts cached blocks
  // as needed. INVALID_ARGUMENT for a `matched` that is no such chain; RESOURCE_EXHAUSTED,
  // changing nothing, when not enough blocks can be had.
  // The namespace of every block evicted for room is appended to `evicted`, when given. The
  // fresh blocks are owned by `quota.owner`, within its cap (CheckQuota).
  absl::Status Reserve(absl::Span<const BlockId> matched, int32_t fresh,
                       std::vector<BlockId>* blocks, std::vector<NamespaceId>* evicted = nullptr,
                       const BlockQuota& quota = {});

  // Whether Reserve(matched, fresh, ..., quota) keeps `quota.owner` within its cap, once
  // `releasing` of the blocks it owns are freed and `uncovering` more of them become
  // unreferenced cached blocks (their holders released first): RESOURCE_EXHAUSTED saying by
  // how much it does not, OK otherwise. Changes nothing.
  absl::Status CheckQuota(const BlockQuota& quota, absl::Span<const BlockId> matched, int32_t fresh,
                          int32_t releasing = 0, int32_t uncovering = 0) const;
  // How many of `quota.owner`'s blocks Reserve(matched, fresh, ..., quota) would still be over
  // its cap after evicting every cached block of its own it may: <= 0 when it fits. Each block
  // released or uncovered first (CheckQuota) takes one off. Changes nothing.
  int64_t QuotaShortfall(const BlockQuota& quota, absl::Span<const BlockId> matched,
                         int32_t fresh) const;
  // Blocks `owner` owns now.
  int32_t OwnedBy(NamespaceId owner) const;

  // Blocks Reserve can hand out fresh right now: free plus unreferenced cached ones.
  int32_t Available() const { return static_cast<int32_t>(free_.size()) + cached_unreferenced_; }

  // Makes `block` (referenced, full, its K/V committed) matchable as holding `tokens` after
  // `parent` (kNoBlock, or a referenced cached block) in `ns`. False, changing nothing, when
  // the same content is cached already (this block stays private) or `parent` is not such a
  // block.
  bool Cache(BlockId block, NamespaceId ns, BlockId parent, absl::Span<const int32_t> tokens);

  // A reference more to each of `blocks`, all referenced already (a fork sharing its source's
  // blocks, or holding one while it is copied). INVALID_ARGUMENT for an id out of range,
  // FAILED_PRECONDITION for an unreferenced block; either changes nothing.
  absl::Status Share(absl::Span<const BlockId> blocks);

  // The cached blocks in `ns` whose history (their chain's tokens from position 0 through
  // their own) starts with `prefix`: the block holding the prefix's last token, when the
  // blocks before it are cached, and only those (what lies under them: Revoke takes it).
  std::vector<BlockId> CachedUnder(NamespaceId ns, absl::Span<const int32_t> prefix) const;
  // The cached blocks of `ns`.
  std::vector<BlockId> CachedIn(NamespaceId ns) const { return index_.InNamespace(ns); }
  // The cached ones of `blocks` and every cached block under them.
  std::vector<BlockId> CachedSubtrees(absl::Span<const BlockId> blocks) const {
    return index_.WithDescendants(blocks);
  }

  // Revokes each of `blocks` (unreferenced) and every cached block under them: each stops
  // matching, becomes free, and gets a higher generation, so leases that name it at an older
  // one are refused. Appends each revoked block and its new generation to `revoked` and
  // `generations`, and returns how many were cached. FAILED_PRECONDITION, changing nothing,
  // when one of them is referenced; INVALID_ARGUMENT for an id out of range.
  absl::StatusOr<int32_t> Revoke(absl::Span<const BlockId> blocks, std::vector<BlockId>* revoked,
                                 std::vector<uint64_t>* generations);

  // Drops one reference; an unreferenced block becomes free, or stays cached if it is.
  // INVALID_ARGUMENT for an id out of range, FAILED_PRECONDITION for an unreferenced block.
  absl::Status Release(BlockId block);

  uint64_t generation(BlockId block) const { return blocks_[block].generation; }
  int32_t refcount(BlockId block) const { return blocks_[block].refs; }
  bool cached(BlockId block) const { return index_.Contains(block); }
  // The namespace that owns `block` (meaningful while it is not free).
  NamespaceId owner(BlockId block) const { return blocks_[block].owner; }
  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  const EvictionPolicy& policy() const { return *policy_; }
  BlockCounts counts() const;

 private:
  struct Block {
    int32_t refs = 0;
    uint64_t generation = 0;
    NamespaceId owner = 0;  // while not free
  };

  absl::Status CheckId(BlockId block) const;
  // Whether `block` may be evicted now, and the policy's candidate set kept in step with it.
  bool Evictable(BlockId block) const;
  void UpdateCandidate(BlockId block);
  // Evicts the policy's victim into the free list; returns its namespace.
  NamespaceId EvictOne();
  // Evicts `block`, an eviction candidate, into the free list; returns its namespace.
  NamespaceId Evict(BlockId block);
  // `owner`'s unreferenced cached blocks but `matched`, each after every block under it.
  std::vector<BlockId> OwnEvictable(NamespaceId owner, absl::Span<const BlockId> matched) const;
  // `block` became free.
  void Freed(BlockId block);

  const int32_t block_size_;
  const std::unique_ptr<EvictionPolicy> policy_;
  std::vector<Block> blocks_;
  std::vector<bool> candidate_;  // told to the policy as a candidate
  PrefixIndex index_;
  std::deque<BlockId> free_;                         // oldest freed first
  absl::flat_hash_map<NamespaceId, int32_t> owned_;  // blocks each namespace owns; no zeros
  int32_t referenced_ = 0;
  int32_t cached_unreferenced_ = 0;
  int64_t evicted_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_BLOCKS_BLOCK_MANAGER_H_
