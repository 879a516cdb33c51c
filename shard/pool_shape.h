// The K/V pool a shard allocates for a head range the coordinator assigned it: the wire's
// ModelSpec and HeadRange as the engine's KvPoolShape, and the dtype between the wire's enum
// and the engine's. Pure functions.
#ifndef KVTIER_SHARD_POOL_SHAPE_H_
#define KVTIER_SHARD_POOL_SHAPE_H_

#include "absl/status/statusor.h"
#include "cache/kv/dtype.h"
#include "cache/kv/kv_pool.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

// INVALID_ARGUMENT naming `dtype` for DTYPE_UNSPECIFIED or an unknown value.
absl::StatusOr<DType> DTypeFromProto(v1::Dtype dtype);
v1::Dtype DTypeToProto(DType dtype);

// The pool of `heads` of `model` (a valid spec): every block of the model, for those heads.
KvPoolShape PoolShapeFor(const v1::ModelSpec& model, const v1::HeadRange& heads);

}  // namespace kvtier

#endif  // KVTIER_SHARD_POOL_SHAPE_H_
