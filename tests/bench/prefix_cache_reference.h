// The reference that the coordinator's prefix-cache hit rates are read against: a plain LRU
// simulation of one global pool of full blocks, written apart from the coordinator and the
// block manager so that it shares no bug with them.
//
// A block is keyed by its chain, a hash of its parent's key and its own token ids, so equal
// keys mean equal prefixes. A prompt hits the longest run of its full blocks, from the first,
// that the pool holds, never counting its last token (the caller needs its query): what the
// coordinator's Extend matches. Then every full block of the prompt is inserted or touched,
// from the last to the first, so a prefix's head is always more recent than its tail and LRU
// evicts tails first.
//
// Pure functions, safe to call from any thread.
#ifndef KVTIER_TESTS_BENCH_PREFIX_CACHE_REFERENCE_H_
#define KVTIER_TESTS_BENCH_PREFIX_CACHE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace kvtier::bench {

// A prompt as the simulation sees it.
struct PromptBlocks {
  int64_t tokens = 0;
  std::vector<uint64_t> keys;  // per full block, in order: tokens / block_size of them
};

PromptBlocks ChainBlocks(absl::Span<const int32_t> tokens, int block_size);

// The cached tokens of all `prompts` served in order by a pool of `capacity_blocks` blocks
// (0: unbounded, the infinite-cache bound), starting empty.
int64_t LruCachedTokens(absl::Span<const PromptBlocks> prompts, int block_size,
                        int64_t capacity_blocks);

}  // namespace kvtier::bench

#endif  // KVTIER_TESTS_BENCH_PREFIX_CACHE_REFERENCE_H_
