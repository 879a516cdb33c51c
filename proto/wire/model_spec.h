// A model's geometry as the wire describes it (kvtier.v1.ModelSpec): validation and parsing
// from the command line. A step's tensor shapes are in layer_shapes.h. Where the heads go is the
// coordinator's business (service/head_placement.h); how a shard's pool is shaped, the shard's
// (shard/pool_shape.h). Pure functions.
#ifndef KVTIER_PROTO_WIRE_MODEL_SPEC_H_
#define KVTIER_PROTO_WIRE_MODEL_SPEC_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

// Bytes per element of a valid dtype (0 for DTYPE_UNSPECIFIED and unknown values).
int DTypeBytes(v1::Dtype dtype);

// INVALID_ARGUMENT naming `field` ("model.name: expected 1..64 characters, got 0") unless
// the name is 1..64 of [A-Za-z0-9._-] and the version at most 64 bytes.
absl::Status ValidateModelId(absl::string_view field, const v1::ModelId& id);

// The same name and version.
bool SameModel(const v1::ModelId& a, const v1::ModelId& b);

// "name@version", or "name" when the version is empty: how messages and logs name a model.
std::string ModelIdString(const v1::ModelId& id);

// INVALID_ARGUMENT naming the field ("model.head_dim: expected 1..512, got 0") unless every
// field is in range and consistent.
absl::Status ValidateModelSpec(const v1::ModelSpec& model);

// Query heads per KV head.
inline int GqaGroupSize(const v1::ModelSpec& model) {
  return model.num_q_heads() / model.num_kv_heads();
}

inline int NumHeads(const v1::HeadRange& range) {
  return range.kv_head_end() - range.kv_head_begin();
}

// "KV heads [2, 4)", for messages.
std::string HeadRangeString(const v1::HeadRange& range);

// Parses a model from "key=value,..." (the --model flag of kvtier-coordinator and
// kvtier-local): name, version, layers, kv_heads, q_heads, head_dim, dtype (fp32|fp16|bf16),
// block_size, blocks, shards. Omitted keys: version "", dtype bf16, block_size 16,
// blocks 1024, shards 1. The result is validated.
absl::StatusOr<v1::ModelSpec> ParseModelSpec(absl::string_view text);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_MODEL_SPEC_H_
