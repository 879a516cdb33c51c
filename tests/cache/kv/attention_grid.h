// The attention grid: paged attention of any KvPool backend against the dense
// double-precision reference (reference_attention.h), on fresh random inputs, over
// dtype x head_dim x GQA group x block size. A backend's test derives from AttentionGridTest,
// says which pools to test with MakePools, and instantiates the suite over kAttentionGrid.
//
// Inside each case: a ragged batch (contexts of 1, block multiples and ragged lengths) and a
// single long sequence, decode and chunked prefill, automatic and forced KV splits.
#ifndef KVTIER_TESTS_CACHE_KV_ATTENTION_GRID_H_
#define KVTIER_TESTS_CACHE_KV_ATTENTION_GRID_H_

#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cache/kv/kv_pool.h"
#include "gtest/gtest.h"

namespace kvtier {

// GoogleTest prints parameters with this (found by ADL in kvtier).
void PrintTo(DType dtype, std::ostream* os);

namespace test {

using AttentionGridParam = std::tuple<DType, int /*head_dim*/, int /*group*/, int /*block_size*/>;

// The grid every backend covers.
inline auto AttentionGrid() {
  return testing::Combine(testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                          testing::Values(64, 128, 256), testing::Values(1, 3, 4, 8),
                          testing::Values(8, 16, 32, 512));
}

// "bf16_d128_g4_b16".
std::string AttentionGridName(const testing::TestParamInfo<AttentionGridParam>& info);

// A pool under test and the name its failures are traced with.
struct PoolUnderTest {
  std::string name;
  std::unique_ptr<KvPool> pool;
};

class AttentionGridTest : public testing::TestWithParam<AttentionGridParam> {
 protected:
  struct SequenceSpec {
    int context_len;
    int num_queries;
  };

  DType dtype() const { return std::get<0>(GetParam()); }
  int head_dim() const { return std::get<1>(GetParam()); }
  int group() const { return std::get<2>(GetParam()); }
  int block_size() const { return std::get<3>(GetParam()); }
  int num_kv_heads() const { return num_kv_heads_; }
  int num_q_heads() const { return group() * num_kv_heads_; }
  // The KV heads of the pools later runs make (2 unless set).
  void set_num_kv_heads(int num_kv_heads) { num_kv_heads_ = num_kv_heads; }

  // The pools to run each batch on, all of `shape`.
  virtual std::vector<PoolUnderTest> MakePools(const KvPoolShape& shape) = 0;

  // Runs the grid's batches (decode and prefill, ragged and long, with automatic and forced
  // splits) on fresh pools; `label` goes into the failure traces.
  void RunGridCase(const std::string& label);

  // Writes fresh random K/V for `specs` into fresh pools at shuffled blocks, runs attention
  // with fresh random queries (params.kv_split_tokens and kv_heads_per_unit as given) and
  // checks every output element against the reference.
  void RunAndCheck(const std::vector<SequenceSpec>& specs, int kv_split_tokens,
                   int kv_heads_per_unit = 0);

 private:
  void ExpectMatches(const std::vector<SequenceSpec>& specs,
                     const std::vector<std::vector<double>>& want, const std::string& out);
  std::vector<SequenceSpec> RaggedBatch(bool prefill, std::mt19937_64& rng) const;
  std::vector<SequenceSpec> LongSequence(bool prefill, std::mt19937_64& rng) const;

  int num_kv_heads_ = 2;
};

}  // namespace test
}  // namespace kvtier

#endif  // KVTIER_TESTS_CACHE_KV_ATTENTION_GRID_H_
