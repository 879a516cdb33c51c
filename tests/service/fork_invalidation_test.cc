// ForkSession, InvalidateSession and InvalidatePrefix in the Coordinator, called directly with
// its shards faked (ControlPlaneTest): a fork shares its source's full blocks and gets its
// tail copied once per shard; a failed copy drops the shard or refuses the fork; an
// invalidation revokes, on every shard, the blocks only its sessions held, fails those
// sessions with reason INVALIDATED, and stops matching at once, within the tenant only.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "tests/service/control_plane_fixture.h"

namespace kvtier::test {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::vector<int32_t> BlocksOf(const v1::BlockLease& lease) {
  return std::vector<int32_t>(lease.blocks().begin(), lease.blocks().end());
}

std::set<std::string> Addresses(
    const std::vector<FakeShardControl::Call<v1::CopyBlocksRequest>>& calls) {
  std::set<std::string> addresses;
  for (const auto& call : calls) addresses.insert(call.address);
  return addresses;
}

using ForkTest = ControlPlaneTest;

TEST_F(ForkTest, SharesTheFullBlocksAndCopiesTheTailOncePerShard) {
  SessionDriver source = Prefilled(RandomTokens(10));  // 2 full blocks and 2 tokens
  const v1::BlockLease& from = source.lease();
  ASSERT_EQ(from.blocks_size(), 3);
  const int32_t used = Stats().models(0).blocks_used();

  absl::StatusOr<SessionDriver> fork = source.Fork();
  ASSERT_TRUE(fork.ok()) << fork.status();
  EXPECT_NE(fork->id(), source.id());
  EXPECT_EQ(fork->context_len(), 10);
  const v1::BlockLease& lease = fork->lease();
  ASSERT_EQ(lease.blocks_size(), 3);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(lease.blocks(i), from.blocks(i)) << i;
    EXPECT_EQ(lease.generations(i), from.generations(i)) << i;
  }
  EXPECT_NE(lease.blocks(2), from.blocks(2));
  EXPECT_GE(lease.writable_from(), 2 * kBlockSize);  // the shared blocks are read-only
  EXPECT_EQ(Stats().models(0).blocks_used(), used + 1);

  const auto copies = shards().copies();
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(Addresses(copies), (std::set<std::string>{"a:1", "b:1"}));
  for (const auto& call : copies) {
    ASSERT_EQ(call.request.copies_size(), 1);
    const v1::BlockCopy& copy = call.request.copies(0);
    EXPECT_EQ(copy.source(), from.blocks(2));
    EXPECT_EQ(copy.source_generation(), from.generations(2));
    EXPECT_EQ(copy.target(), lease.blocks(2));
    EXPECT_EQ(copy.num_tokens(), 10 % kBlockSize);
    EXPECT_TRUE(MessageDifferencer::Equals(call.request.model(), ModelId()));
  }
  EXPECT_NE(copies[0].request.incarnation(), copies[1].request.incarnation());

  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.models(0).cache().forks(), 1);
  EXPECT_EQ(stats.models(0).tenants(0).cache().forks(), 1);
  EXPECT_EQ(stats.tier().forks(), 1);
}

TEST_F(ForkTest, AtABlockBoundaryCopiesNothing) {
  SessionDriver source = Prefilled(RandomTokens(2 * kBlockSize));
  absl::StatusOr<SessionDriver> fork = source.Fork();
  ASSERT_TRUE(fork.ok()) << fork.status();
  EXPECT_EQ(fork->context_len(), 2 * kBlockSize);
  EXPECT_EQ(BlocksOf(fork->lease()), Head(BlocksOf(source.lease()), 2));
  EXPECT_TRUE(shards().copies().empty());
}

TEST_F(ForkTest, AForkOfAForkCopiesTheFirstForksTail) {
  SessionDriver source = Prefilled(RandomTokens(9));
  absl::StatusOr<SessionDriver> first = source.Fork();
  ASSERT_TRUE(first.ok()) << first.status();
  shards().ClearCalls();
  absl::StatusOr<SessionDriver> second = first->Fork();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->context_len(), 9);
  EXPECT_EQ(Head(BlocksOf(second->lease()), 2), Head(BlocksOf(source.lease()), 2));
  const std::set<int32_t> tails = {source.lease().blocks(2), first->lease().blocks(2),
                                   second->lease().blocks(2)};
  EXPECT_EQ(tails.size(), 3u);
  for (const auto& call : shards().copies()) {
    EXPECT_EQ(call.request.copies(0).source(), first->lease().blocks(2));
    EXPECT_EQ(call.request.copies(0).target(), second->lease().blocks(2));
    EXPECT_EQ(call.request.copies(0).num_tokens(), 1);
  }
  EXPECT_EQ(Stats().tier().forks(), 2);
}

TEST_F(ForkTest, ARetainedSessionCanBeForked) {
  SessionDriver source = Prefilled(RandomTokens(6));
  ASSERT_TRUE(source.EndTurn({}, absl::Minutes(5)).ok());
  absl::StatusOr<SessionDriver> fork = source.Fork();
  ASSERT_TRUE(fork.ok()) << fork.status();
  EXPECT_EQ(fork->context_len(), 6);
  EXPECT_EQ(shards().copies().size(), 2u);
  EXPECT_TRUE(fork->Commit({1, 2}).ok());
}

TEST_F(ForkTest, TheForkAndItsSourceGoOnIndependently) {
  SessionDriver source = Prefilled(RandomTokens(10));
  absl::StatusOr<SessionDriver> fork = source.Fork();
  ASSERT_TRUE(fork.ok()) << fork.status();

  ASSERT_TRUE(source.Commit({7}, kBlockSize).ok());
  absl::StatusOr<v1::ExtendResponse> forked = fork->Commit({8, 9}, 2 * kBlockSize);
  ASSERT_TRUE(forked.ok()) << forked.status();
  EXPECT_EQ(source.context_len(), 11);
  EXPECT_EQ(fork->context_len(), 12);
  // Each writes its own tail: the blocks past the shared ones differ.
  EXPECT_NE(source.lease().blocks(2), fork->lease().blocks(2));
  EXPECT_TRUE(source.Commit({1, 2, 3}).ok());
  EXPECT_TRUE(fork->Commit({4, 5, 6}).ok());
  EXPECT_EQ(source.context_len(), 14);
  EXPECT_EQ(fork->context_len(), 15);
  EXPECT_TRUE(source.EndTurn({}, absl::Minutes(1)).ok());
  EXPECT_TRUE(fork->Commit({1}).ok());
}

TEST_F(ForkTest, AnotherTenantsForkIsNotFoundAndChangesNothing) {
  SessionDriver source = Prefilled(RandomTokens(10));
  const v1::GetStatsResponse before = Stats();
  v1::ForkSessionRequest request;
  request.set_session_id(source.id());
  request.set_tenant("other");
  EXPECT_EQ(CallNow(coordinator_, &Coordinator::ForkSession, request).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(MessageDifferencer::Equals(before, Stats()));
  EXPECT_TRUE(shards().copies().empty());
}

TEST_F(ForkTest, ACopyThatFailsDropsTheShardAndTheForkSaysReprefill) {
  SessionDriver source = Prefilled(RandomTokens(10));
  shards().FailCopies("b:1", absl::UnavailableError("b:1 is gone"));
  absl::StatusOr<SessionDriver> fork = source.Fork();
  EXPECT_EQ(fork.status().code(), absl::StatusCode::kFailedPrecondition) << fork.status();
  EXPECT_EQ(ReasonOf(fork.status()), v1::ERROR_REASON_REPREFILL_REQUIRED);
  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.shards(), 1);
  EXPECT_EQ(stats.tier().shards_dropped(), 1);
  EXPECT_EQ(ReasonOf(source.Commit({1}).status()), v1::ERROR_REASON_REPREFILL_REQUIRED);
  EXPECT_EQ(stats.tier().forks(), 0);
}

TEST_F(ForkTest, ACopyRefusedAsInvalidatedLeavesNoFork) {
  SessionDriver source = Prefilled(RandomTokens(10));
  const v1::ModelStats before = Stats().models(0);
  shards().FailCopies("a:1", WithReason(absl::FailedPreconditionError("source revoked"),
                                        v1::ERROR_REASON_INVALIDATED));
  absl::StatusOr<SessionDriver> fork = source.Fork();
  EXPECT_TRUE(IsInvalidated(fork.status())) << fork.status();
  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.models(0).blocks_used(), before.blocks_used());
  EXPECT_EQ(stats.models(0).sessions(), before.sessions());
  EXPECT_EQ(stats.shards(), 2);
  EXPECT_EQ(stats.models(0).cache().forks(), 0);
  EXPECT_EQ(stats.tier().forks(), 0);
  EXPECT_TRUE(source.Commit({1}).ok());
}

using InvalidateSessionTest = ControlPlaneTest;

TEST_F(InvalidateSessionTest, RevokesOnlyTheBlocksItAloneHeldAndFailsIt) {
  const std::vector<int32_t> prompt = RandomTokens(14);  // 3 full blocks and 2 tokens
  SessionDriver gone = Prefilled(prompt);
  SessionDriver sharer = Prefilled(Concat(Head(prompt, 2 * kBlockSize), RandomTokens(3)));
  const std::vector<int32_t> held = BlocksOf(gone.lease());
  ASSERT_EQ(held.size(), 4u);
  ASSERT_EQ(Head(BlocksOf(sharer.lease()), 2), Head(held, 2));

  absl::StatusOr<v1::InvalidationResult> result = InvalidateSession(gone);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sessions(), 1);
  EXPECT_EQ(result->blocks(), 2);
  EXPECT_EQ(result->cached_blocks(), 1);  // the third full block; the tail was never cached
  EXPECT_EQ(result->shards_acknowledged(), 2);
  EXPECT_EQ(result->shards_dropped(), 0);

  const auto revokes = shards().revokes();
  ASSERT_EQ(revokes.size(), 2u);
  for (const auto& call : revokes) {
    ASSERT_EQ(call.request.sessions_size(), 1);
    EXPECT_EQ(call.request.sessions(0).session_id(), gone.id());
    EXPECT_THAT(call.request.blocks(), UnorderedElementsAre(held[2], held[3]));
    ASSERT_EQ(call.request.generations_size(), 2);
    for (int i = 0; i < 2; ++i) {
      const int index = call.request.blocks(i) == held[2] ? 2 : 3;
      EXPECT_GT(call.request.generations(i), gone.lease().generations(index));
    }
  }

  EXPECT_TRUE(IsInvalidated(gone.Commit({1}).status()));
  EXPECT_TRUE(IsInvalidated(gone.EndTurn({}, absl::Minutes(1)).status()));
  v1::GetSessionRequest get;
  get.set_session_id(gone.id());
  get.set_tenant("t");
  EXPECT_TRUE(IsInvalidated(coordinator_.GetSession(get).status()));
  EXPECT_TRUE(sharer.Commit({5}).ok());
  // Only the blocks the sharer still holds match.
  EXPECT_EQ(CachedFor(prompt), 2 * kBlockSize);

  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.models(0).cache().sessions_invalidated(), 1);
  EXPECT_EQ(stats.models(0).cache().blocks_invalidated(), 2);
  EXPECT_EQ(stats.models(0).tenants(0).cache().sessions_invalidated(), 1);
  EXPECT_EQ(stats.tier().session_invalidations(), 1);
  EXPECT_EQ(stats.tier().sessions_invalidated(), 1);
  EXPECT_EQ(stats.tier().blocks_invalidated(), 2);
}

TEST_F(InvalidateSessionTest, AnotherTenantsSessionIsNotFound) {
  SessionDriver session = Prefilled(RandomTokens(6));
  EXPECT_EQ(InvalidateSession(session, "other").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(session.Commit({1}).ok());
  EXPECT_TRUE(shards().revokes().empty());
}

TEST_F(InvalidateSessionTest, ARevokeThatFailsDropsThatShard) {
  SessionDriver session = Prefilled(RandomTokens(6));
  shards().FailRevokes("a:1", absl::UnavailableError("a:1 is gone"));
  absl::StatusOr<v1::InvalidationResult> result = InvalidateSession(session);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->shards_dropped(), 1);
  EXPECT_EQ(result->shards_acknowledged(), 1);
  EXPECT_EQ(Stats().shards(), 1);
  EXPECT_EQ(Stats().tier().shards_dropped(), 1);
}

using InvalidatePrefixTest = ControlPlaneTest;

TEST_F(InvalidatePrefixTest, AnAlignedPrefixStopsMatchingAndFailsTheSessionsStartingWithIt) {
  const std::vector<int32_t> prompt = RandomTokens(14);
  const std::vector<int32_t> prefix = Head(prompt, 2 * kBlockSize);
  SessionDriver starts = Prefilled(prompt);
  SessionDriver first_block_only = Prefilled(Concat(Head(prompt, kBlockSize), RandomTokens(6)));
  SessionDriver unrelated = Prefilled(RandomTokens(9));
  const std::vector<int32_t> held = BlocksOf(starts.lease());

  absl::StatusOr<v1::InvalidationResult> result = InvalidatePrefix(prefix);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sessions(), 1);
  EXPECT_EQ(result->blocks(), 3);         // the prefix's second block and what follows it
  EXPECT_EQ(result->cached_blocks(), 2);  // of those, the full ones
  for (const auto& call : shards().revokes()) {
    EXPECT_THAT(call.request.blocks(), UnorderedElementsAre(held[1], held[2], held[3]));
  }

  EXPECT_TRUE(IsInvalidated(starts.Commit({1}).status()));
  EXPECT_TRUE(first_block_only.Commit({1}).ok());
  EXPECT_TRUE(unrelated.Commit({1}).ok());
  // The first block holds only a shorter prefix: it still matches; nothing past it does.
  EXPECT_EQ(CachedFor(prompt), kBlockSize);
  EXPECT_EQ(CachedFor(Concat(prefix, RandomTokens(3))), kBlockSize);
  EXPECT_EQ(CachedFor(Concat(Head(prompt, kBlockSize), RandomTokens(5))), kBlockSize);
  EXPECT_EQ(Stats().tier().prefix_invalidations(), 1);
}

TEST_F(InvalidatePrefixTest, ANonAlignedPrefixTakesEveryBlockThatStartsWithItsTail) {
  const std::vector<int32_t> prompt = RandomTokens(13);
  const std::vector<int32_t> prefix = Head(prompt, 6);  // a block and a half
  SessionDriver starts = Prefilled(prompt);
  // Shares the prefix but not the rest of its second block.
  SessionDriver also_starts = Prefilled(Concat(prefix, RandomTokens(7)));
  SessionDriver first_block_only = Prefilled(Concat(Head(prompt, kBlockSize), RandomTokens(5)));

  absl::StatusOr<v1::InvalidationResult> result = InvalidatePrefix(prefix);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sessions(), 2);
  EXPECT_TRUE(IsInvalidated(starts.Commit({1}).status()));
  EXPECT_TRUE(IsInvalidated(also_starts.Commit({1}).status()));
  EXPECT_TRUE(first_block_only.Commit({1}).ok());
  EXPECT_EQ(CachedFor(prompt), kBlockSize);
  EXPECT_EQ(CachedFor(Concat(prefix, RandomTokens(7))), kBlockSize);
}

TEST_F(InvalidatePrefixTest, APrefixWithinTheFirstBlockLeavesNothingOfItCached) {
  const std::vector<int32_t> prompt = RandomTokens(9);
  SessionDriver starts = Prefilled(prompt);
  ASSERT_TRUE(starts.EndTurn({}, absl::Minutes(5)).ok());
  SessionDriver other = Prefilled(RandomTokens(9));
  absl::StatusOr<v1::InvalidationResult> result = InvalidatePrefix(Head(prompt, 3));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sessions(), 1);
  EXPECT_EQ(CachedFor(prompt), 0);
  EXPECT_TRUE(IsInvalidated(starts.Commit({1}).status()));
  EXPECT_TRUE(other.Commit({1}).ok());
}

TEST_F(InvalidatePrefixTest, AnotherTenantsIdenticalPrefixStays) {
  const std::vector<int32_t> prompt = RandomTokens(14);
  SessionDriver mine = Prefilled(prompt);
  SessionDriver theirs = Prefilled(prompt, "u");
  ASSERT_TRUE(InvalidatePrefix(Head(prompt, 5)).ok());
  EXPECT_TRUE(IsInvalidated(mine.Commit({1}).status()));
  EXPECT_TRUE(theirs.Commit({1}).ok());
  EXPECT_EQ(CachedFor(prompt, "u"), 3 * kBlockSize);
  // The first block went too: only the invalidated session held it.
  EXPECT_EQ(CachedFor(prompt, "t"), 0);
}

TEST_F(InvalidatePrefixTest, BadRequestsNameTheFieldAndChangeNothing) {
  const std::vector<int32_t> prompt = RandomTokens(10);
  SessionDriver session = Prefilled(prompt);
  const v1::GetStatsResponse before = Stats();
  struct Case {
    std::vector<int32_t> tokens;
    std::string tenant;
    std::string field;
  };
  for (const Case& c : {Case{{}, "t", "tokens"}, Case{{prompt[0], -1}, "t", "tokens[1]"},
                        Case{Head(prompt, 4), "", "tenant"},
                        Case{Head(prompt, 4), std::string(129, 'x'), "tenant"}}) {
    absl::StatusOr<v1::InvalidationResult> result = InvalidatePrefix(c.tokens, c.tenant);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(result.status().message(), HasSubstr(c.field));
  }
  EXPECT_TRUE(MessageDifferencer::Equals(before, Stats()));
  EXPECT_TRUE(shards().revokes().empty());
  EXPECT_TRUE(session.Commit({1}).ok());
}

}  // namespace
}  // namespace kvtier::test
