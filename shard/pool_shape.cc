#include "shard/pool_shape.h"

#include "absl/strings/str_cat.h"
#include "proto/wire/model_spec.h"

namespace kvtier {

absl::StatusOr<DType> DTypeFromProto(v1::Dtype dtype) {
  switch (dtype) {
    case v1::DTYPE_FP32:
      return DType::kF32;
    case v1::DTYPE_FP16:
      return DType::kF16;
    case v1::DTYPE_BF16:
      return DType::kBF16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype: expected DTYPE_FP32, DTYPE_FP16 or DTYPE_BF16, got ",
                       v1::Dtype_Name(dtype).empty() ? absl::StrCat(static_cast<int>(dtype))
                                                     : v1::Dtype_Name(dtype)));
  }
}

v1::Dtype DTypeToProto(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return v1::DTYPE_FP32;
    case DType::kF16:
      return v1::DTYPE_FP16;
    case DType::kBF16:
      return v1::DTYPE_BF16;
  }
  return v1::DTYPE_UNSPECIFIED;
}

KvPoolShape PoolShapeFor(const v1::ModelSpec& model, const v1::HeadRange& heads) {
  KvPoolShape shape;
  shape.num_layers = model.num_layers();
  shape.num_kv_heads = NumHeads(heads);
  shape.head_dim = model.head_dim();
  shape.block_size = model.block_size();
  shape.num_blocks = model.num_blocks();
  shape.dtype = DTypeFromProto(model.dtype()).value_or(DType::kF32);
  return shape;
}

}  // namespace kvtier
