// Head placement: how the coordinator splits a model's KV heads into head ranges, one per slot
// (one shard worker each), and what a slot costs the shard that takes it. Pure functions of a
// valid ModelSpec.
//
// Slots hold contiguous ranges in slot order, as even as possible: the first
// num_kv_heads % num_shards slots one head larger. Every slot holds all of the model's blocks
// for its heads, so a slot's pool is num_layers x num_blocks x block_size tokens of K and V.
#ifndef KVTIER_SERVICE_HEAD_PLACEMENT_H_
#define KVTIER_SERVICE_HEAD_PLACEMENT_H_

#include <cstdint>

#include "kvtier/v1/common.pb.h"

namespace kvtier {

// Slot `slot`'s KV heads; 0 <= slot < model.num_shards().
v1::HeadRange HeadRangeForSlot(const v1::ModelSpec& model, int slot);

// Bytes of K plus V the slot's pool takes on its shard: what placement charges against the
// shard's reported capacity.
int64_t SlotPoolBytes(const v1::ModelSpec& model, int slot);

}  // namespace kvtier

#endif  // KVTIER_SERVICE_HEAD_PLACEMENT_H_
