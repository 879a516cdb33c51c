#include "cache/kv/cpu_kv_pool.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

// Layer l's K is at l * 2 * layer_bytes and its V right after it.
class CpuKvPool final : public KvPool {
 public:
  CpuKvPool(const KvPoolShape& shape, char* storage, const CpuKvPoolOptions& options)
      : KvPool(shape), storage_(storage), options_(options) {}
  ~CpuKvPool() override { std::free(storage_); }

 private:
  int64_t layer_bytes() const { return shape().block_bytes() * shape().num_blocks; }
  char* k_layer(int layer) const { return storage_ + 2 * layer * layer_bytes(); }
  char* v_layer(int layer) const { return k_layer(layer) + layer_bytes(); }

  // Calls copy(pool_offset, tensor_offset, bytes) for each head of each slot: a token's heads
  // are adjacent in the tensor and block_size tokens apart in the pool.
  template <typename Copy>
  void ForEachHead(absl::Span<const int64_t> slots, Copy copy) const {
    const KvPoolShape& s = shape();
    const int64_t head_bytes = int64_t{s.head_dim} * DTypeSize(s.dtype);
    for (size_t i = 0; i < slots.size(); ++i) {
      const int64_t block = slots[i] / s.block_size;
      const int64_t offset = slots[i] % s.block_size;
      for (int h = 0; h < s.num_kv_heads; ++h) {
        const int64_t pool_offset =
            ((block * s.num_kv_heads + h) * s.block_size + offset) * head_bytes;
        copy(pool_offset, (static_cast<int64_t>(i) * s.num_kv_heads + h) * head_bytes, head_bytes);
      }
    }
  }

  absl::Status DoWriteKv(int layer, absl::Span<const int64_t> slots, const char* k,
                         const char* v) override {
    char* k_dst = k_layer(layer);
    char* v_dst = v_layer(layer);
    ForEachHead(slots, [&](int64_t pool_offset, int64_t tensor_offset, int64_t bytes) {
      std::memcpy(k_dst + pool_offset, k + tensor_offset, bytes);
      std::memcpy(v_dst + pool_offset, v + tensor_offset, bytes);
    });
    return absl::OkStatus();
  }

  absl::Status DoReadKv(int layer, absl::Span<const int64_t> slots, char* k,
                        char* v) const override {
    const char* k_src = k_layer(layer);
    const char* v_src = v_layer(layer);
    ForEachHead(slots, [&](int64_t pool_offset, int64_t tensor_offset, int64_t bytes) {
      std::memcpy(k + tensor_offset, k_src + pool_offset, bytes);
      std::memcpy(v + tensor_offset, v_src + pool_offset, bytes);
    });
    return absl::OkStatus();
  }

  absl::Status DoAttend(int layer, absl::Span<const SequenceLayout> sequences,
                        const AttentionParams& params, const char* q, char* out) const override {
    const KvPoolShape& s = shape();
    const PagedKvLayer kv{k_layer(layer), v_layer(layer), s.num_blocks, s.num_kv_heads,
                          s.block_size,   s.head_dim,     s.dtype};
    PagedAttentionCpu(kv, sequences, params, q, out, options_.threads, options_.isa);
    return absl::OkStatus();
  }

  char* const storage_;
  const CpuKvPoolOptions options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvPool>> CreateCpuKvPool(const KvPoolShape& shape,
                                                        const CpuKvPoolOptions& options) {
  if (absl::Status status = shape.Validate(); !status.ok()) return status;
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t bytes =
      (static_cast<size_t>(shape.total_bytes()) + kHugePage - 1) / kHugePage * kHugePage;
  void* storage = std::aligned_alloc(kHugePage, bytes);
  if (storage == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate ", bytes, " bytes for the KV pool (", shape.DebugString(), ")"));
  }
  // NOTE: huge pages cut TLB misses on the random block walk; the kernel may decline.
  madvise(storage, bytes, MADV_HUGEPAGE);
  std::memset(storage, 0, bytes);
  return std::unique_ptr<KvPool>(new CpuKvPool(shape, static_cast<char*>(storage), options));
}

}  // namespace kvtier
