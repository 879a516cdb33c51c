#include "cache/kv/kv_pool.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "cache/kv/attention_tile.h"

namespace kvtier {
namespace {

// "k: expected 4096 bytes (1 tokens x 8 heads x 128 x bf16), got 4095"
absl::Status CheckTensorBytes(absl::string_view field, size_t actual, int64_t tokens, int heads,
                              const KvPoolShape& shape) {
  const int64_t expected = tokens * heads * shape.head_dim * DTypeSize(shape.dtype);
  if (static_cast<int64_t>(actual) == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, " bytes (", tokens,
                                                 " tokens x ", heads, " heads x ", shape.head_dim,
                                                 " x ", DTypeName(shape.dtype), "), got ", actual));
}

}  // namespace

absl::Status KvPoolShape::Validate() const {
  auto check = [](absl::string_view field, int value, int low, int high) {
    if (value >= low && value <= high) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected ", low, "..", high, ", got ", value));
  };
  constexpr int kMaxInt = std::numeric_limits<int>::max();
  for (absl::Status status : {check("num_layers", num_layers, 1, kMaxInt),
                              check("num_kv_heads", num_kv_heads, 1, kMaxInt),
                              check("head_dim", head_dim, 1, attention_internal::kMaxHeadDim),
                              check("block_size", block_size, 1, attention_internal::kMaxBlockSize),
                              check("num_blocks", num_blocks, 1, kMaxInt)}) {
    if (!status.ok()) return status;
  }
  // Slots and element offsets are int64: keep every product well inside it.
  if (static_cast<double>(token_bytes()) * block_size * num_blocks * num_layers * 2 > 1e18) {
    return absl::InvalidArgumentError(absl::StrCat("pool too large: ", DebugString()));
  }
  return absl::OkStatus();
}

std::string KvPoolShape::DebugString() const {
  return absl::StrCat(num_layers, " layers x ", num_blocks, " blocks x ", num_kv_heads, " heads x ",
                      block_size, " tokens x ", head_dim, " ", DTypeName(dtype));
}

absl::Status KvPool::CheckLayer(int layer) const {
  if (layer >= 0 && layer < shape_.num_layers) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("layer: expected 0..", shape_.num_layers - 1, ", got ", layer));
}

absl::Status KvPool::CheckSlots(absl::Span<const int64_t> slots) const {
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i] < 0 || slots[i] >= shape_.num_slots()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slots[", i, "]: ", slots[i], " out of range [0, ", shape_.num_slots(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status KvPool::CheckKvAccess(int layer, absl::Span<const int64_t> slots, size_t k_bytes,
                                   size_t v_bytes) const {
  const int64_t tokens = static_cast<int64_t>(slots.size());
  for (absl::Status status :
       {CheckLayer(layer), CheckSlots(slots),
        CheckTensorBytes("k", k_bytes, tokens, shape_.num_kv_heads, shape_),
        CheckTensorBytes("v", v_bytes, tokens, shape_.num_kv_heads, shape_)}) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status KvPool::WriteKv(int layer, absl::Span<const int64_t> slots, absl::Span<const char> k,
                             absl::Span<const char> v) {
  if (absl::Status status = CheckKvAccess(layer, slots, k.size(), v.size()); !status.ok()) {
    return status;
  }
  return DoWriteKv(layer, slots, k.data(), v.data());
}

absl::Status KvPool::ReadKv(int layer, absl::Span<const int64_t> slots, absl::Span<char> k,
                            absl::Span<char> v) const {
  if (absl::Status status = CheckKvAccess(layer, slots, k.size(), v.size()); !status.ok()) {
    return status;
  }
  return DoReadKv(layer, slots, k.data(), v.data());
}

absl::Status KvPool::Attend(int layer, absl::Span<const SequenceLayout> sequences,
                            const AttentionParams& params, absl::Span<const char> q,
                            absl::Span<char> out) const {
  if (absl::Status status = CheckLayer(layer); !status.ok()) return status;
  if (absl::Status status = ValidateAttentionBatch(sequences, params, shape_.num_kv_heads,
                                                   shape_.block_size, shape_.num_blocks);
      !status.ok()) {
    return status;
  }
  const int64_t queries = TotalQueries(sequences);
  for (absl::Status status :
       {CheckTensorBytes("q", q.size(), queries, params.num_q_heads, shape_),
        CheckTensorBytes("out", out.size(), queries, params.num_q_heads, shape_)}) {
    if (!status.ok()) return status;
  }
  if (queries == 0) return absl::OkStatus();
  return DoAttend(layer, sequences, params, q.data(), out.data());
}

}  // namespace kvtier
