// A model's geometry as the wire describes it (kvtier.v1.ModelSpec): validation, the dtype
// mapping, and how its KV heads are split into head ranges across shards. Pure functions.
#ifndef KVTIER_PROTO_MODEL_SPEC_H_
#define KVTIER_PROTO_MODEL_SPEC_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/dtype.h"
#include "cache/kv_pool.h"
#include "kvtier/v1/attention.pb.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

absl::StatusOr<DType> DTypeFromProto(v1::DType dtype);
v1::DType DTypeToProto(DType dtype);

// INVALID_ARGUMENT naming the field ("model.head_dim: expected 1..512, got 0") unless every
// field is in range and consistent.
absl::Status ValidateModelSpec(const v1::ModelSpec& model);

// Query heads per KV head.
inline int GqaGroupSize(const v1::ModelSpec& model) {
  return model.num_q_heads() / model.num_kv_heads();
}

// Slot `slot`'s KV heads: contiguous ranges in slot order, the first num_kv_heads % num_shards
// slots one head larger. `model` must be valid and 0 <= slot < num_shards.
v1::HeadRange HeadRangeForSlot(const v1::ModelSpec& model, int slot);

inline int NumHeads(const v1::HeadRange& range) {
  return range.kv_head_end() - range.kv_head_begin();
}

// Parses a model from "key=value,..." (the --model flag of kvtier-coordinator and
// kvtier-local): name, version, layers, kv_heads, q_heads, head_dim, dtype (fp32|fp16|bf16),
// block_size, blocks, shards. Omitted keys: version "", dtype bf16, block_size 16,
// blocks 1024, shards 1. The result is validated.
absl::StatusOr<v1::ModelSpec> ParseModelSpec(absl::string_view text);

// The tensor shapes of a step of `num_tokens` new tokens on slot `slot`. `model` must be valid.
v1::LayerShapes LayerShapesForSlot(const v1::ModelSpec& model, int slot, int num_tokens);

// The K/V pool one slot holds. `model` must be valid.
KvPoolShape PoolShapeForSlot(const v1::ModelSpec& model, int slot);

}  // namespace kvtier

#endif  // KVTIER_PROTO_MODEL_SPEC_H_
