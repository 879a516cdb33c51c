// The data plane's results through real gRPC: two shards hold the two (uneven) head ranges of
// a GQA model; two sessions with shuffled block tables prefill, decode and chunk-prefill in
// interleaved steps, batched together or alone, on fresh random inputs. Every output element
// of both shards is checked against the dense double-precision reference over the session's
// whole history, with a tolerance per dtype.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/kv/dtype.h"
#include "cache/kv/reference_attention.h"
#include "gtest/gtest.h"
#include "proto/wire/layer_shapes.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/model_spec.h"
#include "service/head_placement.h"
#include "tests/shard/test_shard.h"

namespace kvtier {

// GoogleTest prints parameters with this (found by ADL in kvtier).
void PrintTo(DType dtype, std::ostream* os) { *os << DTypeName(dtype); }

namespace {

constexpr int kKvElems = kTestKvHeads * kTestHeadDim;  // one token's K (or V), all heads
constexpr int kQElems = kTestQHeads * kTestHeadDim;    // one token's queries, all heads

// Random values in [-range, range], each exactly representable in `dtype`.
std::vector<float> RandomValues(DType dtype, int64_t count, float range, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-range, range);
  std::vector<float> values(count);
  char element[4];
  for (float& value : values) {
    StoreFromFloat(dtype, dist(rng), element, 0);
    value = LoadAsFloat(dtype, element, 0);
  }
  return values;
}

// Heads [begin, end) of `values` ([tokens][heads][head_dim]) as wire bytes in `dtype`.
std::string HeadSlice(DType dtype, const std::vector<float>& values, int heads, int begin,
                      int end) {
  const int64_t tokens = static_cast<int64_t>(values.size()) / (heads * kTestHeadDim);
  const int64_t slice_elems = int64_t{end - begin} * kTestHeadDim;
  std::string bytes(tokens * slice_elems * DTypeSize(dtype), '\0');
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < slice_elems; ++i) {
      StoreFromFloat(dtype, values[(t * heads + begin) * kTestHeadDim + i], bytes.data(),
                     t * slice_elems + i);
    }
  }
  return bytes;
}

// A session as the test sees it: its blocks and its whole K/V history, every head.
struct Session {
  std::string id;
  std::vector<int32_t> blocks;
  int context_len = 0;
  // Per layer: [context_len][kv heads][dim].
  std::vector<std::vector<float>> k = std::vector<std::vector<float>>(kTestLayers);
  std::vector<std::vector<float>> v = std::vector<std::vector<float>>(kTestLayers);
};

// One sequence of a step: `num_new_tokens` more tokens of `session`.
struct Chunk {
  Session* session;
  int num_new_tokens;
};

class AttentionServiceTest : public testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    spec_ = TestModelSpec(dtype());
    for (int slot = 0; slot < kTestShards; ++slot) {
      ASSERT_NO_FATAL_FAILURE(
          StartTestShard(key_, {TestRange(spec_, slot)}, TestShardOptions(), &shards_[slot]));
    }
  }

  DType dtype() const { return GetParam(); }

  // One step of `chunks` on both shards with fresh random q, k and v for every layer; checks
  // every output element against the reference.
  void StepAndCheck(const std::vector<Chunk>& chunks, std::mt19937_64& rng) {
    int num_tokens = 0;
    for (const Chunk& chunk : chunks) num_tokens += chunk.num_new_tokens;
    std::vector<std::vector<float>> q(kTestLayers), k(kTestLayers), v(kTestLayers);
    for (int layer = 0; layer < kTestLayers; ++layer) {
      // Larger queries make some rows' softmax peaky, others flat.
      q[layer] = RandomValues(dtype(), int64_t{num_tokens} * kQElems, 3.0f, rng);
      k[layer] = RandomValues(dtype(), int64_t{num_tokens} * kKvElems, 1.0f, rng);
      v[layer] = RandomValues(dtype(), int64_t{num_tokens} * kKvElems, 1.0f, rng);
    }

    // The sessions' histories grow by the new tokens; the reference attends over them.
    std::vector<std::vector<double>> want(kTestLayers);  // per layer: [tokens][q heads][dim]
    int first_token = 0;
    for (const Chunk& chunk : chunks) {
      Session& session = *chunk.session;
      session.context_len += chunk.num_new_tokens;
      const int end_token = first_token + chunk.num_new_tokens;
      for (int layer = 0; layer < kTestLayers; ++layer) {
        session.k[layer].insert(session.k[layer].end(), k[layer].begin() + first_token * kKvElems,
                                k[layer].begin() + end_token * kKvElems);
        session.v[layer].insert(session.v[layer].end(), v[layer].begin() + first_token * kKvElems,
                                v[layer].begin() + end_token * kKvElems);
        const std::vector<float> queries(q[layer].begin() + first_token * kQElems,
                                         q[layer].begin() + end_token * kQElems);
        const std::vector<double> out =
            ReferenceAttention(ReferenceAttentionShape{.context_len = session.context_len,
                                                       .num_queries = chunk.num_new_tokens,
                                                       .num_q_heads = kTestQHeads,
                                                       .num_kv_heads = kTestKvHeads,
                                                       .head_dim = kTestHeadDim},
                               queries, session.k[layer], session.v[layer]);
        want[layer].insert(want[layer].end(), out.begin(), out.end());
      }
      first_token = end_token;
    }

    for (int slot = 0; slot < kTestShards; ++slot) {
      SCOPED_TRACE(absl::StrCat("slot ", slot));
      const v1::HeadRange heads = HeadRangeForSlot(spec_, slot);
      const int group = GqaGroupSize(spec_);
      const int q_begin = heads.kv_head_begin() * group;
      const int q_end = heads.kv_head_end() * group;
      v1::StepPlan plan;
      *plan.mutable_model() = TestModelId();
      plan.set_slot(slot);
      int num_tokens = 0;
      for (const Chunk& chunk : chunks) {
        v1::SequenceStep* sequence = plan.add_sequences();
        v1::BlockLease* lease = sequence->mutable_lease();
        *lease = SignedLease(key_, TestModelId(), chunk.session->blocks, {1, 1});
        lease->set_session_id(chunk.session->id);
        SignLease(key_, lease);
        sequence->set_context_len(chunk.session->context_len);
        sequence->set_num_new_tokens(chunk.num_new_tokens);
        num_tokens += chunk.num_new_tokens;
      }
      *plan.mutable_shapes() = LayerShapesFor(spec_, heads, num_tokens);
      std::vector<v1::LayerTensors> layers(kTestLayers);
      for (int layer = 0; layer < kTestLayers; ++layer) {
        layers[layer].set_layer(layer);
        layers[layer].set_q(HeadSlice(dtype(), q[layer], kTestQHeads, q_begin, q_end));
        layers[layer].set_k(
            HeadSlice(dtype(), k[layer], kTestKvHeads, heads.kv_head_begin(), heads.kv_head_end()));
        layers[layer].set_v(
            HeadSlice(dtype(), v[layer], kTestKvHeads, heads.kv_head_begin(), heads.kv_head_end()));
      }
      const StepOutcome outcome = shards_[slot].client->Send(StepRequests(plan, layers));
      ASSERT_TRUE(outcome.status.ok())
          << outcome.status.error_code() << ": " << outcome.status.error_message();
      ASSERT_EQ(outcome.responses.size(), static_cast<size_t>(kTestLayers));
      for (int layer = 0; layer < kTestLayers; ++layer) {
        SCOPED_TRACE(absl::StrCat("layer ", layer));
        EXPECT_EQ(outcome.responses[layer].layer(), layer);
        ExpectMatches(want[layer], q_begin, q_end, outcome.responses[layer].out());
      }
    }
  }

  // `out` ([tokens][q_end - q_begin][dim]) against query heads [q_begin, q_end) of `want`
  // ([tokens][all q heads][dim]).
  void ExpectMatches(const std::vector<double>& want, int q_begin, int q_end,
                     const std::string& out) const {
    const int64_t tokens = static_cast<int64_t>(want.size()) / kQElems;
    const int slice_heads = q_end - q_begin;
    ASSERT_EQ(out.size(),
              static_cast<size_t>(tokens * slice_heads * kTestHeadDim * DTypeSize(dtype())));
    const AttentionTolerance tolerance = AttentionToleranceFor(dtype());
    int failures = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int h = q_begin; h < q_end; ++h) {
        for (int d = 0; d < kTestHeadDim; ++d) {
          const double expected = want[(t * kTestQHeads + h) * kTestHeadDim + d];
          const double got =
              LoadAsFloat(dtype(), out.data(), (t * slice_heads + h - q_begin) * kTestHeadDim + d);
          const double bound = tolerance.Bound(expected);
          if (!(std::abs(got - expected) <= bound) && ++failures <= 5) {
            ADD_FAILURE() << "token " << t << ", query head " << h << ", dim " << d << ": got "
                          << got << ", want " << expected << " +- " << bound;
          }
        }
      }
    }
    EXPECT_EQ(failures, 0);
  }

  const std::string key_ = NewLeaseKey();
  v1::ModelSpec spec_;
  TestShard shards_[kTestShards];
};

TEST_P(AttentionServiceTest, InterleavedSessionsMatchDenseReference) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  std::vector<int32_t> free_blocks(kTestBlocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
  // Six blocks each (24 tokens), scattered over the pool.
  Session a{.id = "a", .blocks = {free_blocks.begin(), free_blocks.begin() + 6}};
  Session b{.id = "b", .blocks = {free_blocks.begin() + 6, free_blocks.begin() + 12}};

  const std::vector<std::vector<Chunk>> steps = {
      {{&a, 7}, {&b, 10}},                      // both prefill, batched
      {{&a, 1}, {&b, 1}},                       // both decode
      {{&b, 1}},                                // one decodes alone
      {{&a, 3}, {&b, 1}},                       // a chunked prefill beside a decode
      {{&a, 1}},           {{&b, 1}, {&a, 1}},  // the other order in the batch
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("step ", i));
    ASSERT_NO_FATAL_FAILURE(StepAndCheck(steps[i], rng));
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, AttentionServiceTest,
                         testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

}  // namespace
}  // namespace kvtier
