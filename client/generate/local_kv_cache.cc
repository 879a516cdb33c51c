#include "client/generate/local_kv_cache.h"

#include <algorithm>
#include <limits>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/generate/recompute_attention.h"

namespace kvtier {

absl::StatusOr<std::unique_ptr<LocalKvCache>> LocalKvCache::Create(const AttentionShape& shape,
                                                                   int max_tokens) {
  if (absl::Status s = shape.Validate(); !s.ok()) return s;
  if (max_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be positive, got ", max_tokens));
  }
  // 2 (K and V) x layers x tokens x kv_width floats, and 4 bytes each, must fit in int64.
  int64_t floats = 0;
  int64_t bytes = 0;
  if (__builtin_mul_overflow(int64_t{2} * shape.num_layers, int64_t{max_tokens}, &floats) ||
      __builtin_mul_overflow(floats, shape.kv_width(), &floats) ||
      __builtin_mul_overflow(floats, int64_t{sizeof(float)}, &bytes) ||
      floats > static_cast<int64_t>(std::numeric_limits<size_t>::max() / sizeof(float))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: ", max_tokens, " tokens x ", shape.num_layers, " layers x ",
        shape.num_kv_heads, " heads x ", shape.head_dim, " overflows the storage size"));
  }
  // NOTE: not value-initialized: pages are touched only as tokens are written.
  std::unique_ptr<float[]> storage(new (std::nothrow) float[floats]);
  if (storage == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("max_tokens: cannot allocate ", bytes,
                                                     " bytes for ", max_tokens, " tokens of K/V"));
  }
  return std::unique_ptr<LocalKvCache>(new LocalKvCache(shape, max_tokens, std::move(storage)));
}

LocalKvCache::LocalKvCache(const AttentionShape& shape, int max_tokens,
                           std::unique_ptr<float[]> storage)
    : shape_(shape), max_tokens_(max_tokens), storage_(std::move(storage)), pass_(shape) {}

absl::StatusOr<int> LocalKvCache::BeginStep(int start_pos, absl::Span<const int32_t> tokens) {
  pass_.Abandon();
  if (tokens.empty()) return absl::InvalidArgumentError("tokens: empty");
  if (start_pos != num_tokens_) {
    return absl::FailedPreconditionError(
        absl::StrCat("start_pos: the cache holds ", num_tokens_,
                     " tokens, so the next pass starts there, got ", start_pos));
  }
  if (static_cast<int64_t>(tokens.size()) > max_tokens_ - num_tokens_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache full: ", num_tokens_, " tokens cached + ", tokens.size(),
                     " new exceed the capacity of ", max_tokens_, " tokens (max_tokens)"));
  }
  pass_.Begin(static_cast<int>(tokens.size()));
  return 0;
}

absl::Status LocalKvCache::Attend(int layer, absl::Span<const float> q, absl::Span<const float> k,
                                  absl::Span<const float> v, absl::Span<float> out) {
  if (absl::Status s = pass_.CheckAttend(layer, q.size(), k.size(), v.size(), out.size());
      !s.ok()) {
    return s;
  }
  const int64_t offset = num_tokens_ * shape_.kv_width();
  std::copy(k.begin(), k.end(), k_layer(layer) + offset);
  std::copy(v.begin(), v.end(), v_layer(layer) + offset);
  const int context_len = num_tokens_ + pass_.num_tokens();
  const size_t context_floats = context_len * shape_.kv_width();
  CausalAttention(shape_, context_len, q, absl::MakeConstSpan(k_layer(layer), context_floats),
                  absl::MakeConstSpan(v_layer(layer), context_floats), out);
  pass_.Attended();
  return absl::OkStatus();
}

absl::Status LocalKvCache::EndStep() {
  const int pass_tokens = pass_.num_tokens();
  if (absl::Status s = pass_.End(); !s.ok()) return s;
  num_tokens_ += pass_tokens;
  return absl::OkStatus();
}

void LocalKvCache::Reset() {
  num_tokens_ = 0;
  pass_.Abandon();
}

}  // namespace kvtier
