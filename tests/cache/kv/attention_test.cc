// The CPU backend on the attention grid (attention_grid.h), with every kernel ISA this CPU runs
// (the ones it cannot run are printed as not tested), on one thread and on all; its units of
// several KV heads; and its argument checks.
#include "cache/kv/attention.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/kv/cpu_isa.h"
#include "cache/kv/cpu_kv_pool.h"
#include "cache/kv/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/cache/kv/attention_grid.h"

namespace kvtier {
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

class CpuAttentionTest : public test::AttentionGridTest {
 protected:
  std::vector<test::PoolUnderTest> MakePools(const KvPoolShape& shape) override {
    std::vector<test::PoolUnderTest> pools;
    for (ThreadPool* threads : {static_cast<ThreadPool*>(nullptr), &all_threads_}) {
      for (CpuIsa isa : TestedIsas()) {
        absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCpuKvPool(shape, {threads, isa});
        EXPECT_TRUE(pool.ok()) << pool.status();
        if (!pool.ok()) continue;
        pools.push_back({absl::StrCat(CpuIsaName(isa), ", threads ",
                                      threads != nullptr ? threads->num_threads() : 1),
                         *std::move(pool)});
      }
    }
    return pools;
  }

  ThreadPool all_threads_{0};
};

TEST_P(CpuAttentionTest, MatchesDenseReference) { RunGridCase("cpu"); }

INSTANTIATE_TEST_SUITE_P(Grid, CpuAttentionTest, test::AttentionGrid(), test::AttentionGridName);

// A head_dim that is not a multiple of 16 takes the portable kernel on every CPU.
INSTANTIATE_TEST_SUITE_P(PortableHeadDim, CpuAttentionTest,
                         testing::Combine(testing::Values(DType::kF32, DType::kBF16),
                                          testing::Values(40), testing::Values(1, 4),
                                          testing::Values(16)),
                         test::AttentionGridName);

// Units of several KV heads: head counts that the CPU's cap of 8 heads a unit does not divide,
// units of one head, of the plan's choice, and ones leaving an uneven last group, over
// contexts around the split thresholds (the 256-token minimum automatic split and its
// multiples), on every ISA and thread count.
class CpuHeadGroupTest : public CpuAttentionTest {};

TEST_P(CpuHeadGroupTest, MatchesDenseReference) {
  for (int num_kv_heads : {1, 3, 8, 12, 16}) {
    set_num_kv_heads(num_kv_heads);
    for (int kv_heads_per_unit : {0, 1, 5, 8}) {
      RunAndCheck({{255, 1}, {256, 1}, {257, 1}, {511, 1}, {513, 3}}, 0, kv_heads_per_unit);
      RunAndCheck({{2049, 1}}, 0, kv_heads_per_unit);
      RunAndCheck({{700, 2}, {33, 1}}, /*kv_split_tokens=*/256, kv_heads_per_unit);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(HeadGroups, CpuHeadGroupTest,
                         testing::Combine(testing::Values(DType::kF32, DType::kBF16),
                                          testing::Values(128), testing::Values(1, 4),
                                          testing::Values(16)),
                         test::AttentionGridName);

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
  params_.kv_heads_per_unit = -1;
  ExpectRejected(0, {{table_, 20, 1}}, query_bytes_, query_bytes_, "kv_heads_per_unit");
  params_.kv_heads_per_unit = 0;
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
