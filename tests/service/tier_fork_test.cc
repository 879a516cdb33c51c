// Invariant 1 for forks through a real tier (LocalTier: coordinator and 1-3 shards over gRPC):
// branches forked from a session, in the middle of a block or at its end, of a retained
// session, of a fork, and while the source keeps decoding, each continue with their own tokens,
// and every attention output of every branch equals dense attention over that branch's whole
// history (PrefixKvConversation: K/V that depend on the prefix only). The source's K/V stays
// its own: it keeps matching the reference after its branches wrote theirs.
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/service/prefix_kv_conversation.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

constexpr int kKvHeads = 3, kQHeads = 6, kHeadDim = 32, kBlockSize = 4;

class TierForkTest : public testing::TestWithParam<int /*shards*/> {
 protected:
  void SetUp() override {
    const uint64_t seed = FreshSeed();
    std::cout << "seed " << seed << "\n";
    rng_.seed(seed);
    absl::StatusOr<Tier> tier = StartTier(FastTier(
        TestModel("m", kKvHeads, kQHeads, GetParam(), DType::kBF16, /*num_blocks=*/96, kHeadDim)));
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = *std::move(tier);
  }

  std::unique_ptr<Session> Open() {
    absl::StatusOr<std::unique_ptr<Session>> session =
        tier_.client->OpenSession(TestModelId("m"), "tenant");
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *std::move(session) : nullptr;
  }

  // A branch of `source`: a fork, continuing from the source's history.
  PrefixKvConversation Fork(PrefixKvConversation& source) {
    absl::StatusOr<std::unique_ptr<Session>> fork = source.session().Fork();
    EXPECT_TRUE(fork.ok()) << fork.status();
    EXPECT_EQ((*fork)->context_len(), static_cast<int32_t>(source.tokens().size()));
    return PrefixKvConversation(*std::move(fork), source.tokens());
  }

  std::vector<int32_t> RandomTokens(int count) {
    std::vector<int32_t> tokens(count);
    for (int32_t& token : tokens) token = static_cast<int32_t>(rng_() % 50000);
    return tokens;
  }

  // Decodes `steps` tokens one at a time, each checked.
  void Decode(PrefixKvConversation& conversation, int steps) {
    for (int i = 0; i < steps; ++i) {
      absl::Status status = conversation.Say(RandomTokens(1), rng_);
      ASSERT_TRUE(status.ok()) << status;
    }
  }

  Tier tier_;
  std::mt19937_64 rng_;
};

TEST_P(TierForkTest, BranchesThatDivergeMatchTheReference) {
  PrefixKvConversation source(Open());
  ASSERT_TRUE(source.Say(RandomTokens(2 * kBlockSize + 2), rng_).ok());  // a partial tail
  PrefixKvConversation branch = Fork(source);
  // Each continues with its own tokens, across the tail block and beyond.
  Decode(source, kBlockSize + 1);
  Decode(branch, kBlockSize + 3);
  // A fork of the fork, at a block boundary of its own history this time.
  Decode(branch, kBlockSize * 2 - static_cast<int>(branch.tokens().size()) % kBlockSize);
  ASSERT_EQ(branch.tokens().size() % kBlockSize, 0u);
  PrefixKvConversation twig = Fork(branch);
  Decode(twig, 3);
  Decode(branch, 2);
  // The source never saw its branches' writes.
  Decode(source, 2);
  ASSERT_TRUE(source.Say(RandomTokens(5), rng_).ok());  // a chunk of prefill after
  EXPECT_NE(source.tokens()[2 * kBlockSize + 2], branch.tokens()[2 * kBlockSize + 2]);
}

TEST_P(TierForkTest, AForkOfARetainedSessionContinuesBesideItsResumedSource) {
  PrefixKvConversation source(Open());
  ASSERT_TRUE(source.Say(RandomTokens(3 * kBlockSize + 1), rng_).ok());
  ASSERT_TRUE(source.session().EndTurn().ok());
  PrefixKvConversation branch = Fork(source);
  Decode(branch, 4);
  // The source is resumed by another front-end and takes its next turn.
  absl::StatusOr<std::unique_ptr<Session>> resumed =
      tier_.client->ResumeSession(source.session().id(), "tenant");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  PrefixKvConversation next_turn(*std::move(resumed), source.tokens());
  Decode(next_turn, 4);
  Decode(branch, 2);
}

TEST_P(TierForkTest, ForksWhileTheSourceKeepsDecodingTakeItsCommittedHistory) {
  PrefixKvConversation source(Open());
  ASSERT_TRUE(source.Say(RandomTokens(kBlockSize + 1), rng_).ok());
  const std::string id = source.session().id();
  std::mt19937_64 source_rng(rng_());
  std::thread decoder([&] {
    for (int i = 0; i < 6 * kBlockSize; ++i) {
      std::vector<int32_t> token = {static_cast<int32_t>(source_rng() % 50000)};
      absl::Status status = source.Say(token, source_rng);
      ASSERT_TRUE(status.ok()) << status;
    }
  });
  std::vector<std::unique_ptr<Session>> forks;
  for (int i = 0; i < 4; ++i) {
    // Another front-end forks the session by id as it is being decoded.
    absl::StatusOr<std::unique_ptr<Session>> fork = tier_.client->ForkSession(id, "tenant");
    ASSERT_TRUE(fork.ok()) << fork.status();
    forks.push_back(*std::move(fork));
    absl::SleepFor(absl::Milliseconds(5));
  }
  decoder.join();
  // Each fork holds a committed prefix of the source's history: it continues from there.
  for (std::unique_ptr<Session>& fork : forks) {
    const int32_t length = fork->context_len();
    ASSERT_LE(length, static_cast<int32_t>(source.tokens().size()));
    PrefixKvConversation branch(
        std::move(fork), std::vector<int32_t>(source.tokens().begin(), source.tokens().begin() + length));
    Decode(branch, 3);
  }
  Decode(source, 2);
}

INSTANTIATE_TEST_SUITE_P(Shards, TierForkTest, testing::Values(1, 2, 3),
                         [](const testing::TestParamInfo<int>& info) {
                           return std::to_string(info.param) + "shards";
                         });

}  // namespace
}  // namespace kvtier::test
