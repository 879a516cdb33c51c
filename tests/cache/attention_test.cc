// Paged attention against the dense double-precision reference, on fresh random inputs, over
// dtype x head_dim x GQA group x block size; inside each case: a ragged batch and a single long
// sequence, decode and chunked prefill, one thread and all, automatic and forced KV splits, and
// every kernel ISA this CPU runs (the ones it cannot run are printed as not tested).
#include "cache/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/cpu_isa.h"
#include "cache/cpu_kv_pool.h"
#include "cache/reference_attention.h"
#include "cache/thread_pool.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

constexpr int kNumKvHeads = 2;

}  // namespace

// GoogleTest prints parameters with this (found by ADL in kvtier).
void PrintTo(DType dtype, std::ostream* os) { *os << DTypeName(dtype); }

namespace {

// The kernel ISAs this CPU runs; prints the others, once, so a skipped one is never silent.
const std::vector<CpuIsa>& TestedIsas() {
  static const std::vector<CpuIsa>* const isas = [] {
    auto* result = new std::vector<CpuIsa>;
    for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
      if (CpuSupports(isa)) {
        result->push_back(isa);
      } else {
        std::printf("[   NOTE   ] %s kernels not tested: this CPU lacks the instructions\n",
                    std::string(CpuIsaName(isa)).c_str());
      }
    }
    return result;
  }();
  return *isas;
}

// Random values in [-range, range], rounded to `dtype`: the bytes and their exact fp32 values.
struct RandomTensor {
  std::string bytes;
  std::vector<float> values;
};

RandomTensor MakeRandomTensor(DType dtype, int64_t count, float range, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-range, range);
  RandomTensor tensor;
  tensor.bytes.resize(count * DTypeSize(dtype));
  tensor.values.resize(count);
  for (int64_t i = 0; i < count; ++i) {
    StoreFromFloat(dtype, dist(rng), tensor.bytes.data(), i);
    tensor.values[i] = LoadAsFloat(dtype, tensor.bytes.data(), i);
  }
  return tensor;
}

struct SequenceSpec {
  int context_len;
  int num_queries;
};

using GridParam = std::tuple<DType, int /*head_dim*/, int /*group*/, int /*block_size*/>;

class AttentionTest : public testing::TestWithParam<GridParam> {
 protected:
  DType dtype() const { return std::get<0>(GetParam()); }
  int head_dim() const { return std::get<1>(GetParam()); }
  int group() const { return std::get<2>(GetParam()); }
  int block_size() const { return std::get<3>(GetParam()); }
  int num_q_heads() const { return group() * kNumKvHeads; }

  // Writes fresh random K/V for `specs` into fresh pools (one per kernel ISA) at shuffled
  // blocks, runs attention with fresh random queries and checks every output element against
  // the reference.
  void RunAndCheck(const std::vector<SequenceSpec>& specs, ThreadPool* threads,
                   int kv_split_tokens) {
    const uint64_t seed = std::random_device{}();
    SCOPED_TRACE(absl::StrCat("seed ", seed, ", threads ", threads ? threads->num_threads() : 1,
                              ", kv_split_tokens ", kv_split_tokens));
    std::mt19937_64 rng(seed);

    int total_blocks = 0;
    for (const SequenceSpec& spec : specs) {
      total_blocks += (spec.context_len + block_size() - 1) / block_size();
    }
    // Spare blocks so that ids are scattered over a larger pool, then shuffled.
    const KvPoolShape shape{/*num_layers=*/2, kNumKvHeads,      head_dim(),
                            block_size(),     total_blocks + 7, dtype()};
    std::vector<std::unique_ptr<KvPool>> pools;
    for (CpuIsa isa : TestedIsas()) {
      absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCpuKvPool(shape, {threads, isa});
      ASSERT_TRUE(pool.ok()) << pool.status();
      pools.push_back(*std::move(pool));
    }
    std::vector<int32_t> free_blocks(shape.num_blocks);
    std::iota(free_blocks.begin(), free_blocks.end(), 0);
    std::shuffle(free_blocks.begin(), free_blocks.end(), rng);

    constexpr int kLayer = 1;
    const int64_t token_elems = int64_t{kNumKvHeads} * head_dim();
    const int64_t query_elems = int64_t{num_q_heads()} * head_dim();
    std::vector<std::vector<int32_t>> tables(specs.size());
    std::vector<RandomTensor> keys, values, queries;
    std::vector<SequenceLayout> layouts;
    size_t next_block = 0;
    for (size_t s = 0; s < specs.size(); ++s) {
      const SequenceSpec& spec = specs[s];
      const int blocks = (spec.context_len + block_size() - 1) / block_size();
      tables[s].assign(free_blocks.begin() + next_block, free_blocks.begin() + next_block + blocks);
      next_block += blocks;
      keys.push_back(MakeRandomTensor(dtype(), spec.context_len * token_elems, 1.0f, rng));
      values.push_back(MakeRandomTensor(dtype(), spec.context_len * token_elems, 1.0f, rng));
      // Larger queries make some rows' softmax peaky, others flat.
      queries.push_back(MakeRandomTensor(dtype(), spec.num_queries * query_elems, 3.0f, rng));
      std::vector<int64_t> slots(spec.context_len);
      for (int t = 0; t < spec.context_len; ++t) {
        slots[t] = int64_t{tables[s][t / block_size()]} * block_size() + t % block_size();
      }
      for (const std::unique_ptr<KvPool>& pool : pools) {
        ASSERT_TRUE(pool->WriteKv(kLayer, slots, keys[s].bytes, values[s].bytes).ok());
      }
      layouts.push_back({tables[s], spec.context_len, spec.num_queries});
    }

    std::string q;
    for (const RandomTensor& query : queries) q += query.bytes;
    std::vector<std::vector<double>> want;
    for (size_t s = 0; s < specs.size(); ++s) {
      ReferenceAttentionShape ref_shape;
      ref_shape.context_len = specs[s].context_len;
      ref_shape.num_queries = specs[s].num_queries;
      ref_shape.num_q_heads = num_q_heads();
      ref_shape.num_kv_heads = kNumKvHeads;
      ref_shape.head_dim = head_dim();
      want.push_back(
          ReferenceAttention(ref_shape, queries[s].values, keys[s].values, values[s].values));
    }
    AttentionParams params;
    params.num_q_heads = num_q_heads();
    params.kv_split_tokens = kv_split_tokens;
    for (size_t i = 0; i < pools.size(); ++i) {
      SCOPED_TRACE(absl::StrCat("isa ", CpuIsaName(TestedIsas()[i])));
      // Poison: all-ones bytes are NaN in every dtype, so an unwritten element fails below.
      std::string out(q.size(), '\xff');
      ASSERT_TRUE(pools[i]->Attend(kLayer, layouts, params, q, absl::MakeSpan(out)).ok());
      ExpectMatches(specs, want, out);
    }
  }

  void ExpectMatches(const std::vector<SequenceSpec>& specs,
                     const std::vector<std::vector<double>>& want, const std::string& out) {
    const AttentionTolerance tolerance = AttentionToleranceFor(dtype());
    const int64_t query_elems = int64_t{num_q_heads()} * head_dim();
    int64_t out_index = 0;
    for (size_t s = 0; s < specs.size(); ++s) {
      int failures = 0;
      for (size_t i = 0; i < want[s].size(); ++i, ++out_index) {
        const double got = LoadAsFloat(dtype(), out.data(), out_index);
        const double bound = tolerance.Bound(want[s][i]);
        if (!(std::abs(got - want[s][i]) <= bound) && ++failures <= 5) {
          ADD_FAILURE() << "sequence " << s << " (context " << specs[s].context_len << ", queries "
                        << specs[s].num_queries << ") element " << i << " [query "
                        << i / query_elems << ", head " << i % query_elems / head_dim() << ", dim "
                        << i % head_dim() << "]: got " << got << ", want " << want[s][i] << " +- "
                        << bound;
        }
      }
      EXPECT_EQ(failures, 0) << "in sequence " << s;
    }
  }

  // Contexts of 1, exact block multiples, and ragged lengths; `prefill` gives each several
  // queries (at most its context), else one.
  std::vector<SequenceSpec> RaggedBatch(bool prefill, std::mt19937_64& rng) const {
    const int b = block_size();
    std::vector<int> contexts = {1, b, 3 * b,
                                 std::uniform_int_distribution<int>(b + 1, 4 * b - 1)(rng),
                                 std::uniform_int_distribution<int>(2, 600)(rng)};
    std::vector<SequenceSpec> specs;
    for (int context : contexts) {
      const int queries =
          prefill ? std::min(context, std::uniform_int_distribution<int>(2, 9)(rng)) : 1;
      specs.push_back({context, queries});
    }
    return specs;
  }

  // One sequence long enough that spreading it over threads splits its KV axis.
  std::vector<SequenceSpec> LongSequence(bool prefill, std::mt19937_64& rng) const {
    const int context = std::uniform_int_distribution<int>(1100, 2100)(rng);
    return {{context, prefill ? std::uniform_int_distribution<int>(2, 7)(rng) : 1}};
  }
};

TEST_P(AttentionTest, MatchesDenseReference) {
  std::mt19937_64 rng(std::random_device{}());
  ThreadPool all_threads(0);
  for (ThreadPool* threads : {static_cast<ThreadPool*>(nullptr), &all_threads}) {
    for (bool prefill : {false, true}) {
      // kv_split_tokens: 0 lets the kernel decide; 1.5 blocks rounds up to 2 blocks a split.
      for (int kv_split_tokens : {0, block_size() * 3 / 2}) {
        SCOPED_TRACE(prefill ? "prefill" : "decode");
        RunAndCheck(RaggedBatch(prefill, rng), threads, kv_split_tokens);
        RunAndCheck(LongSequence(prefill, rng), threads, kv_split_tokens);
      }
    }
  }
}

std::string GridName(const testing::TestParamInfo<GridParam>& info) {
  return absl::StrCat(DTypeName(std::get<0>(info.param)), "_d", std::get<1>(info.param), "_g",
                      std::get<2>(info.param), "_b", std::get<3>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Grid, AttentionTest,
                         testing::Combine(testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                                          testing::Values(64, 128, 256),
                                          testing::Values(1, 3, 4, 8),
                                          testing::Values(8, 16, 32, 128)),
                         GridName);

// A head_dim that is not a multiple of 16 takes the portable kernel on every CPU.
INSTANTIATE_TEST_SUITE_P(PortableHeadDim, AttentionTest,
                         testing::Combine(testing::Values(DType::kF32, DType::kBF16),
                                          testing::Values(40), testing::Values(1, 4),
                                          testing::Values(16)),
                         GridName);

class AttentionArgumentsTest : public testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCpuKvPool(shape_, {});
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    params_.num_q_heads = 4;
  }

  // A call of Attend expected to fail with INVALID_ARGUMENT naming `field`.
  void ExpectRejected(int layer, const std::vector<SequenceLayout>& layouts, size_t q_bytes,
                      size_t out_bytes, const std::string& field) {
    std::string q(q_bytes, '\0');
    std::string out(out_bytes, '\0');
    const absl::Status status = pool_->Attend(layer, layouts, params_, q, absl::MakeSpan(out));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find(field), std::string::npos) << status;
  }

  const KvPoolShape shape_{/*num_layers=*/2,  /*num_kv_heads=*/2, /*head_dim=*/64,
                           /*block_size=*/16, /*num_blocks=*/8,   DType::kBF16};
  const size_t query_bytes_ = 4 * 64 * 2;  // one query token, 4 heads, bf16
  std::unique_ptr<KvPool> pool_;
  AttentionParams params_;
  std::vector<int32_t> table_ = {3, 5};
};

TEST_F(AttentionArgumentsTest, RejectsBadArgumentsByField) {
  ExpectRejected(2, {{table_, 20, 1}}, query_bytes_, query_bytes_, "layer");
  ExpectRejected(-1, {{table_, 20, 1}}, query_bytes_, query_bytes_, "layer");
  ExpectRejected(0, {{table_, 20, 1}}, query_bytes_ - 1, query_bytes_, "q: expected 512 bytes");
  ExpectRejected(0, {{table_, 20, 1}}, query_bytes_, query_bytes_ + 2, "out: expected 512");
  ExpectRejected(0, {{table_, 33, 1}}, query_bytes_, query_bytes_, "context_len");
  ExpectRejected(0, {{table_, 20, 0}}, 0, 0, "num_queries");
  ExpectRejected(0, {{table_, 20, 21}}, 21 * query_bytes_, 21 * query_bytes_, "num_queries");
  const std::vector<int32_t> out_of_range = {3, 8};
  ExpectRejected(0, {{out_of_range, 20, 1}}, query_bytes_, query_bytes_, "block_table[1]");
  const std::vector<int32_t> negative = {-1};
  ExpectRejected(0, {{negative, 5, 1}}, query_bytes_, query_bytes_, "block_table[0]");
  params_.num_q_heads = 3;
  ExpectRejected(0, {{table_, 20, 1}}, 3 * 64 * 2, 3 * 64 * 2, "num_q_heads");
}

TEST_F(AttentionArgumentsTest, RejectedCallLeavesOutputAndPoolUntouched) {
  std::string k(2 * 64 * 2, '\x11');
  std::string v(2 * 64 * 2, '\x22');
  ASSERT_TRUE(pool_->WriteKv(0, {3 * 16}, k, v).ok());
  std::string q(query_bytes_, '\0');
  std::string out(query_bytes_, '\x5a');
  const std::vector<int32_t> bad_table = {9};
  EXPECT_FALSE(pool_->Attend(0, {{bad_table, 1, 1}}, params_, q, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, std::string(query_bytes_, '\x5a'));
  std::string k_back(k.size(), '\0'), v_back(v.size(), '\0');
  ASSERT_TRUE(pool_->ReadKv(0, {3 * 16}, absl::MakeSpan(k_back), absl::MakeSpan(v_back)).ok());
  EXPECT_EQ(k_back, k);
  EXPECT_EQ(v_back, v);
}

}  // namespace
}  // namespace kvtier
