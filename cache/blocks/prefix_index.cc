#include "cache/blocks/prefix_index.h"

#include <algorithm>
#include <cassert>

#include "absl/hash/hash.h"

namespace kvtier {

PrefixIndex::PrefixIndex(int32_t num_blocks, int32_t block_size)
    : block_size_(block_size),
      entries_(num_blocks),
      tokens_(static_cast<size_t>(num_blocks) * block_size) {}

uint64_t PrefixIndex::KeyOf(NamespaceId ns, BlockId parent,
                            absl::Span<const int32_t> tokens) const {
  const uint64_t parent_key = parent == kNoBlock ? 0 : entries_[parent].key;
  return absl::HashOf(parent_key, ns, tokens);
}

absl::Span<const int32_t> PrefixIndex::TokensOf(BlockId block) const {
  return absl::MakeConstSpan(tokens_).subspan(static_cast<size_t>(block) * block_size_,
                                              block_size_);
}

BlockId PrefixIndex::Find(NamespaceId ns, BlockId parent, absl::Span<const int32_t> tokens) const {
  assert(static_cast<int32_t>(tokens.size()) == block_size_);
  if (parent != kNoBlock && !entries_[parent].cached) return kNoBlock;
  auto it = by_key_.find(KeyOf(ns, parent, tokens));
  if (it == by_key_.end()) return kNoBlock;
  const Entry& entry = entries_[it->second];
  if (entry.ns != ns || entry.parent != parent || TokensOf(it->second) != tokens) return kNoBlock;
  return it->second;
}

bool PrefixIndex::Insert(BlockId block, NamespaceId ns, BlockId parent,
                         absl::Span<const int32_t> tokens) {
  assert(static_cast<int32_t>(tokens.size()) == block_size_ && !entries_[block].cached);
  if (parent != kNoBlock && !entries_[parent].cached) return false;
  const uint64_t key = KeyOf(ns, parent, tokens);
  if (!by_key_.emplace(key, block).second) return false;
  entries_[block] = Entry{.cached = true, .ns = ns, .parent = parent, .key = key};
  std::copy(tokens.begin(), tokens.end(),
            tokens_.begin() + static_cast<size_t>(block) * block_size_);
  if (parent != kNoBlock) ++entries_[parent].cached_children;
  return true;
}

void PrefixIndex::Erase(BlockId block) {
  Entry& entry = entries_[block];
  assert(entry.cached && entry.cached_children == 0);
  by_key_.erase(entry.key);
  if (entry.parent != kNoBlock) --entries_[entry.parent].cached_children;
  entry = Entry{};
}

}  // namespace kvtier
