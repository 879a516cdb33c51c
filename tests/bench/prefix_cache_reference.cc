#include "tests/bench/prefix_cache_reference.h"

#include <list>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace kvtier::bench {

PromptBlocks ChainBlocks(absl::Span<const int32_t> tokens, int block_size) {
  PromptBlocks prompt;
  prompt.tokens = static_cast<int64_t>(tokens.size());
  uint64_t parent = 0;
  for (size_t begin = 0; begin + block_size <= tokens.size(); begin += block_size) {
    parent = absl::HashOf(parent, tokens.subspan(begin, block_size));
    prompt.keys.push_back(parent);
  }
  return prompt;
}

int64_t LruCachedTokens(absl::Span<const PromptBlocks> prompts, int block_size,
                        int64_t capacity_blocks) {
  std::list<uint64_t> recency;  // most recent first
  absl::flat_hash_map<uint64_t, std::list<uint64_t>::iterator> pool;
  int64_t cached_tokens = 0;
  for (const PromptBlocks& prompt : prompts) {
    const size_t matchable = static_cast<size_t>((prompt.tokens - 1) / block_size);
    size_t hits = 0;
    while (hits < matchable && pool.contains(prompt.keys[hits])) ++hits;
    cached_tokens += static_cast<int64_t>(hits) * block_size;

    for (auto key = prompt.keys.rbegin(); key != prompt.keys.rend(); ++key) {
      if (auto found = pool.find(*key); found != pool.end()) {
        recency.splice(recency.begin(), recency, found->second);
        continue;
      }
      if (capacity_blocks > 0 && static_cast<int64_t>(pool.size()) == capacity_blocks) {
        pool.erase(recency.back());
        recency.pop_back();
      }
      recency.push_front(*key);
      pool.emplace(*key, recency.begin());
    }
  }
  return cached_tokens;
}

}  // namespace kvtier::bench
