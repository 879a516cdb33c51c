#include "proto/model_spec.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kvtier {
namespace {

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t low, int64_t high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("model.", field, ": expected ", low, "..", high, ", got ", value));
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

absl::StatusOr<DType> DTypeFromProto(v1::DType dtype) {
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
                       v1::DType_Name(dtype).empty() ? absl::StrCat(static_cast<int>(dtype))
                                                     : v1::DType_Name(dtype)));
  }
}

v1::DType DTypeToProto(DType dtype) {
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

absl::Status ValidateModelSpec(const v1::ModelSpec& model) {
  const std::string& name = model.name();
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.name: expected 1..64 characters, got ", name.size()));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.name: only letters, digits, '.', '_' and '-' are allowed, got \"", name, "\""));
    }
  }
  if (model.version().size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.version: expected at most 64 bytes, got ", model.version().size()));
  }
  if (absl::StatusOr<DType> dtype = DTypeFromProto(model.dtype()); !dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model.", dtype.status().message()));
  }
  constexpr int kMaxInt = std::numeric_limits<int>::max();
  for (absl::Status status : {
           CheckRange("num_layers", model.num_layers(), 1, 4096),
           CheckRange("num_kv_heads", model.num_kv_heads(), 1, 4096),
           CheckRange("num_q_heads", model.num_q_heads(), model.num_kv_heads(), 65536),
           CheckRange("num_shards", model.num_shards(), 1, model.num_kv_heads()),
           CheckRange("num_blocks", model.num_blocks(), 1, kMaxInt),
       }) {
    if (!status.ok()) return status;
  }
  if (model.num_q_heads() % model.num_kv_heads() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.num_q_heads: expected a multiple of num_kv_heads (",
                     model.num_kv_heads(), "), got ", model.num_q_heads()));
  }
  // The pool checks the rest (head_dim, block_size, total size) for the largest slot.
  absl::Status pool = PoolShapeForSlot(model, 0).Validate();
  if (!pool.ok()) return absl::InvalidArgumentError(absl::StrCat("model.", pool.message()));
  return absl::OkStatus();
}

v1::HeadRange HeadRangeForSlot(const v1::ModelSpec& model, int slot) {
  const int base = model.num_kv_heads() / model.num_shards();
  const int extra = model.num_kv_heads() % model.num_shards();
  v1::HeadRange range;
  range.set_kv_head_begin(slot * base + std::min(slot, extra));
  range.set_kv_head_end(range.kv_head_begin() + base + (slot < extra ? 1 : 0));
  return range;
}

absl::StatusOr<v1::ModelSpec> ParseModelSpec(absl::string_view text) {
  v1::ModelSpec model;
  model.set_dtype(v1::DTYPE_BF16);
  model.set_block_size(16);
  model.set_num_blocks(1024);
  model.set_num_shards(1);
  const std::pair<absl::string_view, void (v1::ModelSpec::*)(int32_t)> int_fields[] = {
      {"layers", &v1::ModelSpec::set_num_layers},
      {"kv_heads", &v1::ModelSpec::set_num_kv_heads},
      {"q_heads", &v1::ModelSpec::set_num_q_heads},
      {"head_dim", &v1::ModelSpec::set_head_dim},
      {"block_size", &v1::ModelSpec::set_block_size},
      {"blocks", &v1::ModelSpec::set_num_blocks},
      {"shards", &v1::ModelSpec::set_num_shards},
  };
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, '=');
    const auto& [key, value] = kv;
    if (key == "name") {
      model.set_name(std::string(value));
      continue;
    }
    if (key == "version") {
      model.set_version(std::string(value));
      continue;
    }
    if (key == "dtype") {
      absl::StatusOr<DType> dtype = ParseDType(value);
      if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat("model dtype: ", value));
      model.set_dtype(DTypeToProto(*dtype));
      continue;
    }
    bool known = false;
    for (const auto& [name, setter] : int_fields) {
      if (key != name) continue;
      int32_t number = 0;
      if (!absl::SimpleAtoi(value, &number)) {
        return absl::InvalidArgumentError(
            absl::StrCat("model ", key, ": expected an integer, got \"", value, "\""));
      }
      (model.*setter)(number);
      known = true;
    }
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: unknown key \"", key,
                       "\" (expected name, version, layers, kv_heads, "
                       "q_heads, head_dim, dtype, block_size, blocks, shards)"));
    }
  }
  if (absl::Status status = ValidateModelSpec(model); !status.ok()) return status;
  return model;
}

v1::LayerShapes LayerShapesForSlot(const v1::ModelSpec& model, int slot, int num_tokens) {
  const int kv_heads = NumHeads(HeadRangeForSlot(model, slot));
  v1::LayerShapes shapes;
  shapes.set_num_tokens(num_tokens);
  shapes.set_num_q_heads(kv_heads * GqaGroupSize(model));
  shapes.set_num_kv_heads(kv_heads);
  shapes.set_head_dim(model.head_dim());
  shapes.set_dtype(model.dtype());
  return shapes;
}

KvPoolShape PoolShapeForSlot(const v1::ModelSpec& model, int slot) {
  KvPoolShape shape;
  shape.num_layers = model.num_layers();
  shape.num_kv_heads = NumHeads(HeadRangeForSlot(model, slot));
  shape.head_dim = model.head_dim();
  shape.block_size = model.block_size();
  shape.num_blocks = model.num_blocks();
  shape.dtype = DTypeFromProto(model.dtype()).value_or(DType::kF32);
  return shape;
}

}  // namespace kvtier
