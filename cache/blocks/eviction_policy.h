// EvictionPolicy: the order in which the block manager (block_manager.h) evicts cached blocks
// when it needs free ones. The manager decides which blocks may go, the candidates: cached,
// referenced by no session, and with no cached child (leaves first, so a chain is evicted from
// its tail and a surviving block's prefix always survives with it). The policy only orders
// them, from what it is told of each block's use.
//
// Three policies, measured against each other on the Mooncake trace by
// kvtier_bench_prefix_trace (README: Prefix sharing):
//   "lru"        least recently used first.
//   "slru"       segmented LRU, the default: blocks used once since they were cached are on
//                probation, blocks used again are protected; the least recently used
//                probationary block goes first, unless protected blocks make up more than 30%
//                of the candidates. A prefix that conversations come back to outlives one-off
//                documents. (The 30% is from a sweep of 10-80% on that trace.)
//   "lfu-aging"  least frequently used first, with dynamic aging (LFU-DA): a candidate's
//                priority is its use count since it was cached plus the priority of the last
//                victim. Measured below LRU on the trace; kept for comparison.
//
// Thread-compatible: the block manager's owner serializes calls (the coordinator's lock).
#ifndef KVTIER_CACHE_BLOCKS_EVICTION_POLICY_H_
#define KVTIER_CACHE_BLOCKS_EVICTION_POLICY_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/blocks/block_id.h"

namespace kvtier {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;

  // "lru", "slru" or "lfu-aging".
  virtual absl::string_view name() const = 0;

  // `block` is used now: matched by a session, or just cached.
  virtual void Touch(BlockId block) = 0;
  // `block` became an eviction candidate, or stopped being one (a session matched it, or a
  // child of it was cached).
  virtual void AddCandidate(BlockId block) = 0;
  virtual void RemoveCandidate(BlockId block) = 0;
  // Removes and returns the candidate to evict next. Only called with a candidate present.
  virtual BlockId PopVictim() = 0;
  // `block` left the cache: its history is forgotten.
  virtual void Forget(BlockId block) = 0;
};

// A policy by name ("lru", "slru", "lfu-aging") for blocks [0, num_blocks); INVALID_ARGUMENT
// naming the policy otherwise.
absl::StatusOr<std::unique_ptr<EvictionPolicy>> NewEvictionPolicy(absl::string_view name,
                                                                  int32_t num_blocks);

// The policy the coordinator uses unless configured otherwise.
inline constexpr absl::string_view kDefaultEvictionPolicy = "slru";

}  // namespace kvtier

#endif  // KVTIER_CACHE_BLOCKS_EVICTION_POLICY_H_
