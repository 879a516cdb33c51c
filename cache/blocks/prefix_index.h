// PrefixIndex: the cached full blocks of one model, found by content. A block's key is a hash
// of its parent's key (0 for a chain's first block), its namespace and its block_size token
// ids, so equal keys mean equal prefixes up to and including the block (vLLM's hash-chained
// blocks). Every entry also keeps what its key was made of, and a lookup compares that too:
// a hash collision is a miss, never another prompt's K/V.
//
// Token storage is one array of num_blocks x block_size ids, allocated up front.
//
// Thread-compatible: the block manager's owner serializes calls.
#ifndef KVTIER_CACHE_BLOCKS_PREFIX_INDEX_H_
#define KVTIER_CACHE_BLOCKS_PREFIX_INDEX_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "cache/blocks/block_id.h"

namespace kvtier {

// Who may match a block: a hash of tenant, model name, version and adapter, made by the
// coordinator. Blocks of different namespaces never match.
using NamespaceId = uint64_t;

class PrefixIndex {
 public:
  PrefixIndex(int32_t num_blocks, int32_t block_size);
  // The bytes the index allocates up front per block of `block_size` tokens.
  static int64_t BytesPerBlock(int64_t block_size);

  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;

  // The cached block holding `tokens` (block_size ids) after `parent` (kNoBlock for the first
  // block of a chain; else a cached block) in `ns`, or kNoBlock.
  BlockId Find(NamespaceId ns, BlockId parent, absl::Span<const int32_t> tokens) const;

  // Caches `block` as holding `tokens` after `parent` in `ns`. False, changing nothing, when
  // that content is cached already (in another block) or `parent` is not cached.
  bool Insert(BlockId block, NamespaceId ns, BlockId parent, absl::Span<const int32_t> tokens);

  // Uncaches `block`, which must be cached and have no cached child.
  void Erase(BlockId block);

  // The cached blocks after `parent` (kNoBlock: chains' first blocks) in `ns` whose first
  // tokens are `leading` (at most block_size ids).
  std::vector<BlockId> Extending(NamespaceId ns, BlockId parent,
                                 absl::Span<const int32_t> leading) const;
  // The cached blocks of `ns`.
  std::vector<BlockId> InNamespace(NamespaceId ns) const;
  // `roots` (cached blocks) and every cached block under them, each once, every block after
  // all of its cached children: an order Erase can take them in.
  std::vector<BlockId> WithDescendants(absl::Span<const BlockId> roots) const;
  // NOTE: these three scan every block (num_blocks entries): for invalidation, which is rare,
  // not for the step path.

  bool Contains(BlockId block) const { return entries_[block].cached; }
  BlockId Parent(BlockId block) const { return entries_[block].parent; }
  NamespaceId Namespace(BlockId block) const { return entries_[block].ns; }
  int32_t CachedChildren(BlockId block) const { return entries_[block].cached_children; }
  int32_t size() const { return static_cast<int32_t>(by_key_.size()); }

 private:
  struct Entry {
    bool cached = false;
    NamespaceId ns = 0;
    BlockId parent = kNoBlock;
    uint64_t key = 0;
    int32_t cached_children = 0;
  };

  uint64_t KeyOf(NamespaceId ns, BlockId parent, absl::Span<const int32_t> tokens) const;
  absl::Span<const int32_t> TokensOf(BlockId block) const;

  const int32_t block_size_;
  std::vector<Entry> entries_;   // per block
  std::vector<int32_t> tokens_;  // per block, block_size ids
  absl::flat_hash_map<uint64_t, BlockId> by_key_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_BLOCKS_PREFIX_INDEX_H_
