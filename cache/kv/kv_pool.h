// KvPool: the physical K/V storage of one head range of one model, and the attention that
// reads it.
//
// For each layer the pool holds K and V, each laid out [num_blocks][num_kv_heads][block_size]
// [head_dim] in the model dtype, so one head's block is contiguous. A token lives in a slot,
// block_id * block_size + offset. Storage is allocated once, at creation, and never grows.
//
// The public methods check every argument against the shape (tensor sizes to the byte, layer,
// slots, block tables, context lengths) and return INVALID_ARGUMENT naming the field; only
// then do they call the backend (CPU here, CUDA in cache/cuda/). Tensors are host bytes in the
// pool's dtype: the backend stages them to wherever the blocks live.
//
// Thread-safety: concurrent calls are safe when they touch disjoint slots; a write and a read
// of the same slot race. The coordinator guarantees that: a block is written only by the
// session that owns it, before any other session may match it.
#ifndef KVTIER_CACHE_KV_KV_POOL_H_
#define KVTIER_CACHE_KV_KV_POOL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cache/kv/attention.h"
#include "cache/kv/dtype.h"

namespace kvtier {

struct KvPoolShape {
  int num_layers = 0;
  int num_kv_heads = 0;  // heads held here: the shard's head range, not the model's total
  int head_dim = 0;
  int block_size = 0;  // tokens per block
  int num_blocks = 0;
  DType dtype = DType::kBF16;

  absl::Status Validate() const;

  int64_t num_slots() const { return int64_t{num_blocks} * block_size; }
  // Bytes of K (or V) for one token of one layer, all heads.
  int64_t token_bytes() const { return int64_t{num_kv_heads} * head_dim * DTypeSize(dtype); }
  // Bytes of K (or V) for one block of one layer, all heads.
  int64_t block_bytes() const { return token_bytes() * block_size; }
  // Bytes of K plus V for all layers and blocks.
  int64_t total_bytes() const { return 2 * block_bytes() * num_blocks * num_layers; }

  std::string DebugString() const;
};

class KvPool {
 public:
  virtual ~KvPool() = default;

  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  const KvPoolShape& shape() const { return shape_; }

  // Stores the K and V of new tokens: `k` and `v` are [slots.size()][num_kv_heads][head_dim].
  // Slots should be distinct: which of a repeated slot's rows is kept depends on the backend.
  absl::Status WriteKv(int layer, absl::Span<const int64_t> slots, absl::Span<const char> k,
                       absl::Span<const char> v);

  // Copies out what WriteKv stored, in the same layout.
  absl::Status ReadKv(int layer, absl::Span<const int64_t> slots, absl::Span<char> k,
                      absl::Span<char> v) const;

  // Paged attention of `layer` for a batch of sequences (see attention.h): `q` and `out` are
  // [total queries][params.num_q_heads][head_dim], sequence by sequence. The new tokens' K/V
  // must already be written.
  absl::Status Attend(int layer, absl::Span<const SequenceLayout> sequences,
                      const AttentionParams& params, absl::Span<const char> q,
                      absl::Span<char> out) const;

 protected:
  explicit KvPool(const KvPoolShape& shape) : shape_(shape) {}

  // Backend hooks, called with validated arguments.
  virtual absl::Status DoWriteKv(int layer, absl::Span<const int64_t> slots, const char* k,
                                 const char* v) = 0;
  virtual absl::Status DoReadKv(int layer, absl::Span<const int64_t> slots, char* k,
                                char* v) const = 0;
  virtual absl::Status DoAttend(int layer, absl::Span<const SequenceLayout> sequences,
                                const AttentionParams& params, const char* q, char* out) const = 0;

 private:
  absl::Status CheckLayer(int layer) const;
  absl::Status CheckSlots(absl::Span<const int64_t> slots) const;
  // Layer, slots, and K and V byte sizes of a WriteKv or ReadKv.
  absl::Status CheckKvAccess(int layer, absl::Span<const int64_t> slots, size_t k_bytes,
                             size_t v_bytes) const;

  const KvPoolShape shape_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_KV_POOL_H_
