#include "service/head_placement.h"

#include <algorithm>

#include "proto/wire/model_spec.h"

namespace kvtier {

v1::HeadRange HeadRangeForSlot(const v1::ModelSpec& model, int slot) {
  const int base = model.num_kv_heads() / model.num_shards();
  const int extra = model.num_kv_heads() % model.num_shards();
  v1::HeadRange range;
  range.set_kv_head_begin(slot * base + std::min(slot, extra));
  range.set_kv_head_end(range.kv_head_begin() + base + (slot < extra ? 1 : 0));
  return range;
}

int64_t SlotPoolBytes(const v1::ModelSpec& model, int slot) {
  return int64_t{2} * model.num_layers() * model.num_blocks() * model.block_size() *
         NumHeads(HeadRangeForSlot(model, slot)) * model.head_dim() * DTypeBytes(model.dtype());
}

}  // namespace kvtier
