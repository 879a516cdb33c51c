// What kvtier_bench_attention's CPU and CUDA halves share: the Llama-3-8B decode shapes they
// measure, the pool sizing and batch layout over shuffled blocks, the median, and filling a
// pool (every slot of every layer gets the same seeded chunk of random values in [-1, 1],
// through KvPool::WriteKv, so any backend fills the same way).
#ifndef KVTIER_TESTS_BENCH_DECODE_BENCH_SUPPORT_H_
#define KVTIER_TESTS_BENCH_DECODE_BENCH_SUPPORT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "cache/kv/attention.h"
#include "cache/kv/kv_pool.h"

namespace kvtier::bench {

// Llama-3-8B attention, one layer, bf16 K/V in blocks of 16.
inline constexpr int kQueryHeads = 32;
inline constexpr int kKvHeads = 8;
inline constexpr int kHeadDim = 128;
inline constexpr int kBlockSize = 16;
inline constexpr DType kDType = DType::kBF16;
inline constexpr int64_t kTokenKvBytes = 2 * int64_t{kKvHeads} * kHeadDim * 2;  // K + V

double Median(std::vector<double> values);

// Tokens of the largest batch x context case that fits in `max_pool_bytes` of K/V.
int64_t PoolTokensFor(const std::vector<int>& batches, const std::vector<int>& contexts,
                      int64_t max_pool_bytes);

// `batch` sequences of `context` tokens (a multiple of kBlockSize), one new query each, over
// consecutive runs of `shuffled_blocks`, which must outlive the layouts.
std::vector<SequenceLayout> DecodeLayouts(absl::Span<const int32_t> shuffled_blocks, int batch,
                                          int context);

absl::Status FillWithRandomKv(KvPool& pool);

}  // namespace kvtier::bench

#endif  // KVTIER_TESTS_BENCH_DECODE_BENCH_SUPPORT_H_
