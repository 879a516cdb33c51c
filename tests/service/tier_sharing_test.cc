// Invariant 1 under prefix sharing, retention, eviction and take-over, through a real tier
// (LocalTier: coordinator and 1-3 shards over gRPC): every attention output equals dense
// attention over the session's whole history.
//
// For sharing to be meaningful, a token's K/V must depend on its prefix only, as in a real
// model: here the K/V of position p at layer l are pseudo-random values seeded by a hash of
// tokens [0, p] and l, so sessions that share a prefix share its K/V, whether they computed it
// or matched it in the tier. Queries are fresh random values.
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "cache/kv/reference_attention.h"
#include "client/step.h"
#include "gtest/gtest.h"
#include "shard/pool_shape.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

constexpr int kKvHeads = 3, kQHeads = 6, kHeadDim = 32, kBlockSize = 4;
constexpr DType kDType = DType::kBF16;

// A conversation as the front-end knows it: its tokens, and the session holding them.
struct Conversation {
  std::unique_ptr<Session> session;
  std::vector<int32_t> tokens;
};

// K or V (`which` 0 or 1) of position `p` of `tokens` at `layer`: [kv_heads][head_dim] values
// in [-1, 1], exact in the model dtype, determined by tokens [0, p] alone.
std::vector<float> PrefixKv(const std::vector<int32_t>& tokens, int p, int layer, int which) {
  const uint64_t seed = absl::HashOf(absl::MakeConstSpan(tokens).subspan(0, p + 1), layer, which);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(kKvHeads * kHeadDim);
  uint16_t bits = 0;
  for (float& value : values) {
    StoreFromFloat(kDType, uniform(rng), &bits, 0);
    value = LoadAsFloat(kDType, &bits, 0);
  }
  return values;
}

void AppendBytes(const std::vector<float>& values, std::string* bytes) {
  const size_t first = bytes->size() / DTypeSize(kDType);
  bytes->resize(bytes->size() + values.size() * DTypeSize(kDType));
  for (size_t i = 0; i < values.size(); ++i) {
    StoreFromFloat(kDType, values[i], bytes->data(), first + i);
  }
}

class TierSharingTest : public testing::TestWithParam<int /*shards*/> {
 protected:
  void SetUp() override {
    const uint64_t seed = FreshSeed();
    std::cout << "seed " << seed << "\n";
    rng_.seed(seed);
    // 24 blocks of 4 tokens: small enough that cached blocks and retained sessions are evicted.
    LocalTierOptions options = FastTier(TestModel("m", kKvHeads, kQHeads, GetParam(), kDType,
                                                  /*num_blocks=*/24, kHeadDim));
    options.coordinator.default_retention = absl::Minutes(5);
    absl::StatusOr<Tier> tier = StartTier(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = *std::move(tier);
  }

  std::unique_ptr<Session> Open(const std::string& tenant) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        tier_.client->OpenSession(TestModelId("m"), tenant);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *std::move(session) : nullptr;
  }

  // Adds `tokens` to the conversation and steps the uncached ones, checking every layer's
  // output against dense attention over the whole history. Returns the tier's status and, in
  // *cached, how many of `tokens` the tier held already.
  absl::Status Say(Conversation& conversation, const std::vector<int32_t>& tokens,
                   int32_t* cached = nullptr) {
    absl::StatusOr<int32_t> found = conversation.session->Extend(tokens);
    if (!found.ok()) return found.status();
    if (cached != nullptr) *cached = *found;
    const int first = static_cast<int>(conversation.tokens.size()) + *found;
    conversation.tokens.insert(conversation.tokens.end(), tokens.begin(), tokens.end());
    const int context = static_cast<int>(conversation.tokens.size());
    const int rows = context - first;
    absl::StatusOr<std::unique_ptr<Step>> step = conversation.session->BeginStep();
    if (!step.ok()) return step.status();
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (int layer = 0; layer < 2; ++layer) {
      std::vector<float> q(int64_t{rows} * kQHeads * kHeadDim);
      for (float& value : q) {
        uint16_t bits = 0;
        StoreFromFloat(kDType, uniform(rng_), &bits, 0);
        value = LoadAsFloat(kDType, &bits, 0);
      }
      std::string q_bytes, k_bytes, v_bytes;
      AppendBytes(q, &q_bytes);
      std::vector<float> k_all, v_all;
      for (int p = 0; p < context; ++p) {
        const std::vector<float> k = PrefixKv(conversation.tokens, p, layer, 0);
        const std::vector<float> v = PrefixKv(conversation.tokens, p, layer, 1);
        k_all.insert(k_all.end(), k.begin(), k.end());
        v_all.insert(v_all.end(), v.begin(), v.end());
        if (p >= first) {
          AppendBytes(k, &k_bytes);
          AppendBytes(v, &v_bytes);
        }
      }
      std::string out(q_bytes.size(), '\0');
      if (absl::Status status = (*step)->Attend(layer, q_bytes, k_bytes, v_bytes,
                                                absl::MakeSpan(out.data(), out.size()));
          !status.ok()) {
        return status;
      }
      ReferenceAttentionShape shape;
      shape.context_len = context;
      shape.num_queries = rows;
      shape.num_q_heads = kQHeads;
      shape.num_kv_heads = kKvHeads;
      shape.head_dim = kHeadDim;
      const std::vector<double> want = ReferenceAttention(shape, q, k_all, v_all);
      int mismatches = 0;
      for (size_t e = 0; e < want.size(); ++e) {
        const double got = LoadAsFloat(kDType, out.data(), e);
        if (std::abs(got - want[e]) > AttentionToleranceFor(kDType).Bound(want[e]) &&
            ++mismatches <= 3) {
          ADD_FAILURE() << "layer " << layer << " element " << e << ": got " << got << ", want "
                        << want[e] << " (context " << context << ", rows " << rows << ")";
        }
      }
    }
    return (*step)->Finish();
  }

  std::vector<int32_t> RandomTokens(int count) {
    std::vector<int32_t> tokens(count);
    for (int32_t& token : tokens) token = static_cast<int32_t>(rng_() % 50000);
    return tokens;
  }

  static std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  Tier tier_;
  std::mt19937_64 rng_;
};

TEST_P(TierSharingTest, SharedRetainedEvictedAndTakenOverSessionsMatchTheReference) {
  const std::vector<int32_t> system = RandomTokens(3 * kBlockSize);

  // a writes the shared system prompt; b, same tenant, finds its full blocks cached.
  Conversation a{Open("tenant"), {}};
  int32_t cached = -1;
  ASSERT_TRUE(Say(a, Concat(system, RandomTokens(3)), &cached).ok());
  EXPECT_EQ(cached, 0);
  ASSERT_TRUE(a.session->EndTurn().ok());
  Conversation b{Open("tenant"), {}};
  ASSERT_TRUE(Say(b, Concat(system, RandomTokens(5)), &cached).ok());
  EXPECT_EQ(cached, 12);
  EXPECT_EQ(b.session->turn_cached_tokens(), 12);
  EXPECT_EQ(b.session->turn_computed_tokens(), 5);
  // Another tenant never does.
  Conversation other{Open("other-tenant"), {}};
  ASSERT_TRUE(Say(other, Concat(system, RandomTokens(2)), &cached).ok());
  EXPECT_EQ(cached, 0);
  ASSERT_TRUE(other.session->Close().ok());

  // Decode on the shared prefix: b writes past it, never into it.
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Say(b, RandomTokens(1)).ok());
  ASSERT_TRUE(b.session->Close().ok());

  // a's next turn, taken over by a second client: its whole history is its own, retained.
  absl::StatusOr<std::unique_ptr<Client>> second = Client::Connect(tier_.client->options());
  ASSERT_TRUE(second.ok());
  absl::StatusOr<std::unique_ptr<Session>> resumed =
      (*second)->ResumeSession(a.session->id(), "tenant");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  Conversation a2{*std::move(resumed), a.tokens};
  ASSERT_TRUE(Say(a2, RandomTokens(4)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Say(a2, RandomTokens(1)).ok());

  // Pressure: new conversations, from a few families of prompts or fresh ones, fill the 24
  // blocks, evicting cached blocks and then retained sessions; every step that runs is
  // checked.
  std::vector<std::vector<int32_t>> families = {system, RandomTokens(2 * kBlockSize),
                                                RandomTokens(4 * kBlockSize)};
  int reprefills = 0;
  bool a2_alive = true;
  ASSERT_TRUE(a2.session->EndTurn(absl::Seconds(30)).ok());
  for (int round = 0; round < 16; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    Conversation c{Open("tenant"), {}};
    const size_t family = rng_() % (families.size() + 1);
    const std::vector<int32_t> prompt =
        family < families.size() ? families[family] : RandomTokens(3 * kBlockSize);
    const absl::Status status = Say(c, Concat(prompt, RandomTokens(1 + rng_() % 8)));
    if (absl::IsResourceExhausted(status)) continue;  // everything left is held by active ones
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_TRUE(Say(c, RandomTokens(1)).ok());
    // Half end their turn retained, half close (their full blocks stay cached).
    if (rng_() % 2 == 0) {
      ASSERT_TRUE(c.session->EndTurn(absl::Minutes(1 + round)).ok());
    } else {
      ASSERT_TRUE(c.session->Close().ok());
    }
    if (!a2_alive) continue;
    // The retained a2 may have been evicted for room: then it says re-prefill, never a wrong
    // answer.
    const absl::Status again = Say(a2, RandomTokens(1));
    if (IsReprefillRequired(again)) {
      ++reprefills;
      a2_alive = false;
      continue;
    }
    ASSERT_TRUE(again.ok()) << again;
    ASSERT_TRUE(a2.session->EndTurn(absl::Seconds(30)).ok());
  }
  absl::StatusOr<v1::GetStatsResponse> stats = tier_.client->GetStats();
  ASSERT_TRUE(stats.ok());
  const v1::CacheCounters& counters = stats->models(0).cache();
  EXPECT_GT(counters.cached_tokens(), 12);
  EXPECT_GT(counters.blocks_evicted(), 0);
  std::cout << "cached tokens " << counters.cached_tokens() << ", blocks evicted "
            << counters.blocks_evicted() << ", sessions evicted " << counters.sessions_evicted()
            << ", re-prefills seen " << reprefills << "\n";
}

INSTANTIATE_TEST_SUITE_P(Shards, TierSharingTest, testing::Values(1, 2, 3),
                         [](const testing::TestParamInfo<int>& info) {
                           return absl::StrCat(info.param, "_shards");
                         });

}  // namespace
}  // namespace kvtier::test
