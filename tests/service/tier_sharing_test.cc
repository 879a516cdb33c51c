// Invariant 1 under prefix sharing, retention, eviction and take-over, through a real tier
// (LocalTier: coordinator and 1-3 shards over gRPC): every attention output equals dense
// attention over the session's whole history (PrefixKvConversation: K/V that depend on the
// prefix only, so sharing is meaningful).
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/service/prefix_kv_conversation.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

constexpr int kKvHeads = 3, kQHeads = 6, kHeadDim = 32, kBlockSize = 4;
constexpr DType kDType = DType::kBF16;

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

  absl::Status Say(PrefixKvConversation& conversation, const std::vector<int32_t>& tokens,
                   int32_t* cached = nullptr) {
    return conversation.Say(tokens, rng_, cached);
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
  PrefixKvConversation a(Open("tenant"));
  int32_t cached = -1;
  ASSERT_TRUE(Say(a, Concat(system, RandomTokens(3)), &cached).ok());
  EXPECT_EQ(cached, 0);
  ASSERT_TRUE(a.session().EndTurn().ok());
  PrefixKvConversation b(Open("tenant"));
  ASSERT_TRUE(Say(b, Concat(system, RandomTokens(5)), &cached).ok());
  EXPECT_EQ(cached, 12);
  EXPECT_EQ(b.session().turn_cached_tokens(), 12);
  EXPECT_EQ(b.session().turn_computed_tokens(), 5);
  // Another tenant never does.
  PrefixKvConversation other(Open("other-tenant"));
  ASSERT_TRUE(Say(other, Concat(system, RandomTokens(2)), &cached).ok());
  EXPECT_EQ(cached, 0);
  ASSERT_TRUE(other.session().Close().ok());

  // Decode on the shared prefix: b writes past it, never into it.
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Say(b, RandomTokens(1)).ok());
  ASSERT_TRUE(b.session().Close().ok());

  // a's next turn, taken over by a second client: its whole history is its own, retained.
  absl::StatusOr<std::unique_ptr<Client>> second = Client::Connect(tier_.client->options());
  ASSERT_TRUE(second.ok());
  absl::StatusOr<std::unique_ptr<Session>> resumed =
      (*second)->ResumeSession(a.session().id(), "tenant");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  PrefixKvConversation a2(*std::move(resumed), a.tokens());
  ASSERT_TRUE(Say(a2, RandomTokens(4)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Say(a2, RandomTokens(1)).ok());

  // Pressure: new conversations, from a few families of prompts or fresh ones, fill the 24
  // blocks, evicting cached blocks and then retained sessions; every step that runs is
  // checked.
  std::vector<std::vector<int32_t>> families = {system, RandomTokens(2 * kBlockSize),
                                                RandomTokens(4 * kBlockSize)};
  int reprefills = 0;
  bool a2_alive = true;
  ASSERT_TRUE(a2.session().EndTurn(absl::Seconds(30)).ok());
  for (int round = 0; round < 16; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    PrefixKvConversation c(Open("tenant"));
    const size_t family = rng_() % (families.size() + 1);
    const std::vector<int32_t> prompt =
        family < families.size() ? families[family] : RandomTokens(3 * kBlockSize);
    const absl::Status status = Say(c, Concat(prompt, RandomTokens(1 + rng_() % 8)));
    if (absl::IsResourceExhausted(status)) continue;  // everything left is held by active ones
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_TRUE(Say(c, RandomTokens(1)).ok());
    // Half end their turn retained, half close (their full blocks stay cached).
    if (rng_() % 2 == 0) {
      ASSERT_TRUE(c.session().EndTurn(absl::Minutes(1 + round)).ok());
    } else {
      ASSERT_TRUE(c.session().Close().ok());
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
    ASSERT_TRUE(a2.session().EndTurn(absl::Seconds(30)).ok());
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
