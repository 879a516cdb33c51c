// BlockId: a block's place in one model's global block id space, [0, num_blocks). Block b
// holds, on every shard, K and V of that shard's heads for block_size tokens of every layer.
#ifndef KVTIER_CACHE_BLOCKS_BLOCK_ID_H_
#define KVTIER_CACHE_BLOCKS_BLOCK_ID_H_

#include <cstdint>

namespace kvtier {

using BlockId = int32_t;

// No block: the parent of a chain's first block.
inline constexpr BlockId kNoBlock = -1;

}  // namespace kvtier

#endif  // KVTIER_CACHE_BLOCKS_BLOCK_ID_H_
