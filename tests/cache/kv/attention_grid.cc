#include "tests/cache/kv/attention_grid.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cache/kv/attention.h"
#include "cache/kv/reference_attention.h"

namespace kvtier {

void PrintTo(DType dtype, std::ostream* os) { *os << DTypeName(dtype); }

namespace test {
namespace {

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

}  // namespace

std::string AttentionGridName(const testing::TestParamInfo<AttentionGridParam>& info) {
  return absl::StrCat(DTypeName(std::get<0>(info.param)), "_d", std::get<1>(info.param), "_g",
                      std::get<2>(info.param), "_b", std::get<3>(info.param));
}

void AttentionGridTest::RunGridCase(const std::string& label) {
  SCOPED_TRACE(label);
  std::mt19937_64 rng(std::random_device{}());
  for (bool prefill : {false, true}) {
    SCOPED_TRACE(prefill ? "prefill" : "decode");
    // kv_split_tokens: 0 lets the backend decide; 1.5 blocks rounds up to 2 blocks a split.
    for (int kv_split_tokens : {0, block_size() * 3 / 2}) {
      RunAndCheck(RaggedBatch(prefill, rng), kv_split_tokens);
      RunAndCheck(LongSequence(prefill, rng), kv_split_tokens);
    }
  }
}

void AttentionGridTest::RunAndCheck(const std::vector<SequenceSpec>& specs, int kv_split_tokens,
                                    int kv_heads_per_unit) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed, ", kv heads ", num_kv_heads(), ", kv_split_tokens ",
                            kv_split_tokens, ", kv_heads_per_unit ", kv_heads_per_unit));
  std::mt19937_64 rng(seed);

  int total_blocks = 0;
  for (const SequenceSpec& spec : specs) {
    total_blocks += (spec.context_len + block_size() - 1) / block_size();
  }
  // Spare blocks so that ids are scattered over a larger pool, then shuffled.
  const KvPoolShape shape{/*num_layers=*/2, num_kv_heads(),      head_dim(),
                          block_size(),     total_blocks + 7, dtype()};
  std::vector<PoolUnderTest> pools = MakePools(shape);
  if (HasFatalFailure()) return;
  std::vector<int32_t> free_blocks(shape.num_blocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);

  constexpr int kLayer = 1;
  const int64_t token_elems = int64_t{num_kv_heads()} * head_dim();
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
    for (const PoolUnderTest& under_test : pools) {
      const absl::Status status =
          under_test.pool->WriteKv(kLayer, slots, keys[s].bytes, values[s].bytes);
      ASSERT_TRUE(status.ok()) << under_test.name << ": " << status;
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
    ref_shape.num_kv_heads = num_kv_heads();
    ref_shape.head_dim = head_dim();
    want.push_back(
        ReferenceAttention(ref_shape, queries[s].values, keys[s].values, values[s].values));
  }
  AttentionParams params;
  params.num_q_heads = num_q_heads();
  params.kv_split_tokens = kv_split_tokens;
  params.kv_heads_per_unit = kv_heads_per_unit;
  for (const PoolUnderTest& under_test : pools) {
    SCOPED_TRACE(under_test.name);
    // Poison: all-ones bytes are NaN in every dtype, so an unwritten element fails below.
    std::string out(q.size(), '\xff');
    const absl::Status status =
        under_test.pool->Attend(kLayer, layouts, params, q, absl::MakeSpan(out));
    ASSERT_TRUE(status.ok()) << status;
    ExpectMatches(specs, want, out);
  }
}

void AttentionGridTest::ExpectMatches(const std::vector<SequenceSpec>& specs,
                                      const std::vector<std::vector<double>>& want,
                                      const std::string& out) {
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
                      << specs[s].num_queries << ") element " << i << " [query " << i / query_elems
                      << ", head " << i % query_elems / head_dim() << ", dim " << i % head_dim()
                      << "]: got " << got << ", want " << want[s][i] << " +- " << bound;
      }
    }
    EXPECT_EQ(failures, 0) << "in sequence " << s;
  }
}

std::vector<AttentionGridTest::SequenceSpec> AttentionGridTest::RaggedBatch(
    bool prefill, std::mt19937_64& rng) const {
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

std::vector<AttentionGridTest::SequenceSpec> AttentionGridTest::LongSequence(
    bool prefill, std::mt19937_64& rng) const {
  // Long enough that spreading it over a CPU's threads or a GPU's multiprocessors splits it.
  const int context = std::uniform_int_distribution<int>(1100, 2100)(rng);
  return {{context, prefill ? std::uniform_int_distribution<int>(2, 7)(rng) : 1}};
}

}  // namespace test
}  // namespace kvtier
