#include "cache/blocks/prefix_index.h"

#include <algorithm>
#include <cassert>

#include "absl/hash/hash.h"

namespace kvtier {

PrefixIndex::PrefixIndex(int32_t num_blocks, int32_t block_size)
    : block_size_(block_size),
      entries_(num_blocks),
      tokens_(static_cast<size_t>(num_blocks) * block_size) {}

int64_t PrefixIndex::BytesPerBlock(int64_t block_size) {
  return static_cast<int64_t>(sizeof(Entry)) + block_size * static_cast<int64_t>(sizeof(int32_t));
}

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

std::vector<BlockId> PrefixIndex::Extending(NamespaceId ns, BlockId parent,
                                            absl::Span<const int32_t> leading) const {
  assert(static_cast<int32_t>(leading.size()) <= block_size_);
  std::vector<BlockId> found;
  for (BlockId block = 0; block < static_cast<BlockId>(entries_.size()); ++block) {
    const Entry& entry = entries_[block];
    if (entry.cached && entry.ns == ns && entry.parent == parent &&
        TokensOf(block).subspan(0, leading.size()) == leading) {
      found.push_back(block);
    }
  }
  return found;
}

std::vector<BlockId> PrefixIndex::InNamespace(NamespaceId ns) const {
  std::vector<BlockId> found;
  for (BlockId block = 0; block < static_cast<BlockId>(entries_.size()); ++block) {
    if (entries_[block].cached && entries_[block].ns == ns) found.push_back(block);
  }
  return found;
}

std::vector<BlockId> PrefixIndex::WithDescendants(absl::Span<const BlockId> roots) const {
  const BlockId num_blocks = static_cast<BlockId>(entries_.size());
  std::vector<std::vector<BlockId>> children(num_blocks);
  for (BlockId block = 0; block < num_blocks; ++block) {
    const Entry& entry = entries_[block];
    if (entry.cached && entry.parent != kNoBlock) children[entry.parent].push_back(block);
  }
  // Depth first, each block after its children; `seen` skips roots under other roots.
  std::vector<bool> seen(num_blocks);
  std::vector<BlockId> order;
  std::vector<std::pair<BlockId, size_t>> stack;  // block, its next child to visit
  for (BlockId root : roots) {
    if (!entries_[root].cached || seen[root]) continue;
    seen[root] = true;
    stack.push_back({root, 0});
    while (!stack.empty()) {
      auto& [block, next] = stack.back();
      if (next < children[block].size()) {
        const BlockId child = children[block][next++];
        if (!seen[child]) {
          seen[child] = true;
          stack.push_back({child, 0});
        }
        continue;
      }
      order.push_back(block);
      stack.pop_back();
    }
  }
  return order;
}

}  // namespace kvtier
