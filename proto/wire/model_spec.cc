#include "proto/wire/model_spec.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/wire/quoted_prefix.h"

namespace kvtier {
namespace {

// The largest head and block the attention kernels take (cache/kv/attention_tile.h says the
// same; shards check their pools against it again).
constexpr int kMaxHeadDim = 512;
constexpr int kMaxBlockSize = 512;

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

int DTypeBytes(v1::Dtype dtype) {
  switch (dtype) {
    case v1::DTYPE_FP32:
      return 4;
    case v1::DTYPE_FP16:
    case v1::DTYPE_BF16:
      return 2;
    default:
      return 0;
  }
}

std::string HeadRangeString(const v1::HeadRange& range) {
  return absl::StrCat("KV heads [", range.kv_head_begin(), ", ", range.kv_head_end(), ")");
}

absl::Status ValidateModelId(absl::string_view field, const v1::ModelId& id) {
  const std::string& name = id.name();
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".name: expected 1..64 characters, got ", name.size()));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".name: only letters, digits, '.', '_' and '-' are allowed, got ",
                       QuotedPrefix(name)));
    }
  }
  if (id.version().size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".version: expected at most 64 bytes, got ", id.version().size()));
  }
  return absl::OkStatus();
}

bool SameModel(const v1::ModelId& a, const v1::ModelId& b) {
  return a.name() == b.name() && a.version() == b.version();
}

std::string ModelIdString(const v1::ModelId& id) {
  return id.version().empty() ? id.name() : absl::StrCat(id.name(), "@", id.version());
}

absl::Status ValidateModelSpec(const v1::ModelSpec& model) {
  if (absl::Status status = ValidateModelId("model.id", model.id()); !status.ok()) return status;
  if (DTypeBytes(model.dtype()) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.dtype: expected DTYPE_FP32, DTYPE_FP16 or DTYPE_BF16, got ",
        v1::Dtype_Name(model.dtype()).empty() ? absl::StrCat(static_cast<int>(model.dtype()))
                                              : v1::Dtype_Name(model.dtype())));
  }
  constexpr int kMaxInt = std::numeric_limits<int>::max();
  for (absl::Status status : {
           CheckRange("num_layers", model.num_layers(), 1, 4096),
           CheckRange("num_kv_heads", model.num_kv_heads(), 1, 4096),
           CheckRange("num_q_heads", model.num_q_heads(), model.num_kv_heads(), 65536),
           CheckRange("num_shards", model.num_shards(), 1, model.num_kv_heads()),
           CheckRange("head_dim", model.head_dim(), 1, kMaxHeadDim),
           CheckRange("block_size", model.block_size(), 1, kMaxBlockSize),
           CheckRange("num_blocks", model.num_blocks(), 1, kMaxInt),
       }) {
    if (!status.ok()) return status;
  }
  if (model.num_q_heads() % model.num_kv_heads() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.num_q_heads: expected a multiple of num_kv_heads (",
                     model.num_kv_heads(), "), got ", model.num_q_heads()));
  }
  // Slots and element offsets are int64 on every side: keep a whole model's K/V well inside it.
  const double model_bytes = 2.0 * model.num_layers() * model.num_kv_heads() * model.head_dim() *
                             DTypeBytes(model.dtype()) * model.block_size() * model.num_blocks();
  if (model_bytes > 1e18) {
    return absl::InvalidArgumentError(absl::StrCat("model.num_blocks: ", model.num_blocks(),
                                                   " blocks make the model's K/V ", model_bytes,
                                                   " bytes, more than 1e18"));
  }
  return absl::OkStatus();
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
      model.mutable_id()->set_name(std::string(value));
      continue;
    }
    if (key == "version") {
      model.mutable_id()->set_version(std::string(value));
      continue;
    }
    if (key == "dtype") {
      if (value == "fp32") {
        model.set_dtype(v1::DTYPE_FP32);
      } else if (value == "fp16") {
        model.set_dtype(v1::DTYPE_FP16);
      } else if (value == "bf16") {
        model.set_dtype(v1::DTYPE_BF16);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("model dtype: expected fp32, fp16 or bf16, got \"", value, "\""));
      }
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

}  // namespace kvtier
