// Session against a fake coordinator and fake shards: when it calls the coordinator, what it
// commits, and what a failed, abandoned or unfinished step leaves behind.
#include "client/session.h"

#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/step.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "tests/client/fake_tier.h"

namespace kvtier {
namespace {

using test::kTenant;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() : rng_(seed_), client_(tier_.Connect()) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        client_->OpenSession(tier_.model.id(), kTenant);
    EXPECT_TRUE(session.ok()) << session.status();
    if (session.ok()) session_ = *std::move(session);
  }

  FakeSessionService::Calls calls() const { return tier_.coordinator.calls(); }

  const uint64_t seed_ = test::FreshSeed();
  std::mt19937_64 rng_;
  test::FakeTier tier_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Session> session_;
};

TEST_F(SessionTest, ExtendRefusesBadTokensNamingThemAndCallsNothing) {
  absl::Status status = session_->Extend({}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("tokens"));
  status = session_->Extend({4, -1}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("tokens[1]"));
  EXPECT_EQ(session_->pending_tokens(), 0);
  EXPECT_THAT(calls().rpcs, ElementsAre("OpenSession"));
}

// Block size 4: decode calls the coordinator at tokens 0, 4, 8, each time committing the tokens
// written since the last call and reserving one more.
TEST_F(SessionTest, DecodeCallsTheCoordinatorOncePerBlockAndCommitsWhatWasWritten) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  const int block_size = tier_.model.block_size();
  for (int32_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(test::ExtendAndStep(*session_, {100 + i}, rng_).ok());
    EXPECT_EQ(session_->context_len(), i + 1);
    EXPECT_EQ(calls().extend.size(), static_cast<size_t>(i / block_size + 1)) << "token " << i;
  }
  const FakeSessionService::Calls seen = calls();
  EXPECT_THAT(seen.rpcs, ElementsAre("OpenSession", "Extend", "Extend", "Extend"));
  ASSERT_EQ(seen.extend.size(), 3u);
  for (const v1::ExtendRequest& request : seen.extend) {
    EXPECT_EQ(request.session_id(), session_->id());
    EXPECT_EQ(request.tenant(), kTenant);
    EXPECT_EQ(request.writer(), 101u);  // OpenSession's
    EXPECT_EQ(request.reserve_tokens(), 1);
  }
  EXPECT_EQ(seen.extend[0].expected_context_len(), 0);
  EXPECT_THAT(seen.extend[0].tokens(), ElementsAre());
  EXPECT_EQ(seen.extend[1].expected_context_len(), 0);
  EXPECT_THAT(seen.extend[1].tokens(), ElementsAre(100, 101, 102, 103));
  EXPECT_EQ(seen.extend[2].expected_context_len(), 4);
  EXPECT_THAT(seen.extend[2].tokens(), ElementsAre(104, 105, 106, 107));
}

// A prefill is looked up and reserved for at once; tokens the lease already covers need no
// call.
TEST_F(SessionTest, ExtendCallsTheCoordinatorOnlyWhenTheLeaseIsTooSmall) {
  ASSERT_TRUE(session_->Extend({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}).ok());  // 3 blocks: 12 tokens
  ASSERT_TRUE(session_->Extend({11, 12}).ok());
  EXPECT_EQ(session_->pending_tokens(), 12);
  FakeSessionService::Calls seen = calls();
  ASSERT_EQ(seen.extend.size(), 1u);
  EXPECT_THAT(seen.extend[0].next_tokens(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
  EXPECT_EQ(seen.extend[0].reserve_tokens(), 0);

  ASSERT_TRUE(session_->Extend({13}).ok());
  seen = calls();
  ASSERT_EQ(seen.extend.size(), 2u);
  EXPECT_EQ(seen.extend[1].reserve_tokens(), 13);  // nothing written yet: all of them
  EXPECT_THAT(seen.extend[1].tokens(), ElementsAre());
}

// The coordinator found a prefix of the prompt cached: only the rest is stepped, and the
// session says so for the turn.
TEST_F(SessionTest, PrefillsOnlyTheUncachedTail) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  tier_.coordinator.CacheNext(8);
  absl::StatusOr<int32_t> cached = session_->Extend({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(*cached, 8);
  EXPECT_EQ(session_->context_len(), 8);
  EXPECT_EQ(session_->pending_tokens(), 2);
  EXPECT_EQ(session_->turn_cached_tokens(), 8);
  absl::StatusOr<std::unique_ptr<Step>> step = session_->BeginStep();
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ((*step)->num_tokens(), 2);
  ASSERT_TRUE(test::RunStep(**step, tier_.model, rng_).ok());
  for (const FakeShard& shard : tier_.shards) {
    const v1::SequenceStep& sequence = shard.steps()[0].requests[0].plan().sequences(0);
    EXPECT_EQ(sequence.context_len(), 10);
    EXPECT_EQ(sequence.num_new_tokens(), 2);
  }
  EXPECT_EQ(session_->context_len(), 10);
  EXPECT_EQ(session_->turn_computed_tokens(), 2);
  ASSERT_TRUE(session_->EndTurn().ok());
  EXPECT_THAT(calls().end_turn[0].tokens(), ElementsAre(9, 10));
  EXPECT_EQ(tier_.coordinator.committed(session_->id()),
            std::vector<int32_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(session_->turn_cached_tokens(), 0);
  EXPECT_EQ(session_->turn_computed_tokens(), 0);
}

TEST_F(SessionTest, ARefusedExtendAddsNothing) {
  tier_.coordinator.FailNext("Extend", grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "full"));
  absl::Status status = session_->Extend({1, 2}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("Extend"));
  EXPECT_EQ(session_->pending_tokens(), 0);
}

// The lease the fake grants lives 1 s, less than the 300 s step deadline: each step renews it
// as the session's writer and sends the renewed lease to the shards.
TEST_F(SessionTest, RenewsALeaseThatWouldExpireWithinTheStepDeadline) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  tier_.coordinator.set_lease_ttl(absl::Seconds(1));
  ASSERT_TRUE(test::ExtendAndStep(*session_, {1, 2}, rng_).ok());
  const FakeSessionService::Calls seen = calls();
  EXPECT_THAT(seen.rpcs, ElementsAre("OpenSession", "Extend", "RenewLease"));
  ASSERT_EQ(seen.renew_lease.size(), 1u);
  EXPECT_EQ(seen.renew_lease[0].session_id(), session_->id());
  EXPECT_EQ(seen.renew_lease[0].tenant(), kTenant);
  EXPECT_EQ(seen.renew_lease[0].writer(), 101u);
  for (const FakeShard& shard : tier_.shards) {
    const std::vector<FakeShard::RecordedStep> streams = shard.steps();
    ASSERT_EQ(streams.size(), 1u);
    // lease-1 from OpenSession, lease-2 from Extend, lease-3 the renewal.
    EXPECT_EQ(streams[0].requests[0].plan().sequences(0).lease().signature(), "lease-3");
  }
}

TEST_F(SessionTest, KeepsALeaseThatOutlivesTheStepDeadline) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  tier_.coordinator.set_lease_ttl(absl::Hours(1));
  ASSERT_TRUE(test::ExtendAndStep(*session_, {1, 2}, rng_).ok());
  EXPECT_THAT(calls().rpcs, ElementsAre("OpenSession", "Extend"));
  for (const FakeShard& shard : tier_.shards) {
    const std::vector<FakeShard::RecordedStep> streams = shard.steps();
    ASSERT_EQ(streams.size(), 1u);
    EXPECT_EQ(streams[0].requests[0].plan().sequences(0).lease().signature(), "lease-2");
  }
}

// The renewal shows another client committed tokens: the step does not begin.
TEST_F(SessionTest, RenewalThatFindsTheSessionAdvancedRefusesTheStep) {
  tier_.coordinator.set_lease_ttl(absl::Seconds(1));
  ASSERT_TRUE(session_->Extend({1, 2}).ok());
  tier_.coordinator.AdvanceSession(session_->id(), 3);
  absl::Status status = session_->BeginStep().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_CONTEXT_CHANGED);
  EXPECT_EQ(session_->pending_tokens(), 0);
  EXPECT_TRUE(tier_.shards[0].steps().empty());
}

TEST_F(SessionTest, TokensCountAsWrittenOnlyWhenTheStepFinishedOnEveryShard) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  ASSERT_TRUE(session_->Extend({1, 2, 3}).ok());
  absl::StatusOr<std::unique_ptr<Step>> step = session_->BeginStep();
  ASSERT_TRUE(step.ok()) << step.status();
  for (int layer = 0; layer < tier_.model.num_layers(); ++layer) {
    test::LayerInputs tensors = test::RandomLayer(tier_.model, 3, rng_);
    ASSERT_TRUE((*step)
                    ->Attend(layer, test::Bytes(tensors.q), test::Bytes(tensors.k),
                             test::Bytes(tensors.v), test::MutableBytes(tensors.out))
                    .ok());
    EXPECT_EQ(session_->context_len(), 0);
    EXPECT_EQ(session_->pending_tokens(), 3);
  }
  ASSERT_TRUE((*step)->Finish().ok());
  EXPECT_EQ(session_->context_len(), 3);
  EXPECT_EQ(session_->pending_tokens(), 0);
}

// Shard 1 answers every layer but the last, then fails: the step failed, nothing counts.
TEST_F(SessionTest, AStepThatFailsOnOneShardAtItsLastLayerWritesNothing) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  tier_.shards[1].FailNextStep(grpc::Status(grpc::StatusCode::INTERNAL, "disk on fire"),
                               tier_.model.num_layers() - 1);
  absl::Status status = test::ExtendAndStep(*session_, {1, 2, 3}, rng_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("shard 1"));
  EXPECT_EQ(session_->context_len(), 0);
  EXPECT_EQ(session_->pending_tokens(), 0);
  ASSERT_TRUE(session_->EndTurn().ok());
  const FakeSessionService::Calls seen = calls();
  ASSERT_EQ(seen.end_turn.size(), 1u);
  EXPECT_THAT(seen.end_turn[0].tokens(), ElementsAre());
  EXPECT_THAT(tier_.coordinator.committed(session_->id()), ElementsAre());
}

// A step that fails mid-way drops its tokens and commits nothing; extending them again retries,
// and they are committed once.
TEST_F(SessionTest, AFailedStepDropsItsTokensAndExtendRetries) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  ASSERT_TRUE(test::ExtendAndStep(*session_, {1, 2}, rng_).ok());
  tier_.shards[0].FailNextStep(grpc::Status(grpc::StatusCode::INTERNAL, "bad"), 1);
  EXPECT_EQ(test::ExtendAndStep(*session_, {3, 4, 5}, rng_).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(session_->context_len(), 2);
  EXPECT_EQ(session_->pending_tokens(), 0);

  ASSERT_TRUE(test::ExtendAndStep(*session_, {3, 4, 5}, rng_).ok());
  EXPECT_EQ(session_->context_len(), 5);
  ASSERT_TRUE(session_->EndTurn().ok());
  EXPECT_THAT(tier_.coordinator.committed(session_->id()), ElementsAre(1, 2, 3, 4, 5));
}

TEST_F(SessionTest, AnAbandonedStepDropsItsTokensAndCommitsNothing) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  ASSERT_TRUE(session_->Extend({1, 2, 3}).ok());
  {
    absl::StatusOr<std::unique_ptr<Step>> step = session_->BeginStep();
    ASSERT_TRUE(step.ok()) << step.status();
    test::LayerInputs tensors = test::RandomLayer(tier_.model, 3, rng_);
    ASSERT_TRUE((*step)
                    ->Attend(0, test::Bytes(tensors.q), test::Bytes(tensors.k),
                             test::Bytes(tensors.v), test::MutableBytes(tensors.out))
                    .ok());
  }  // destroyed before Finish
  EXPECT_EQ(session_->context_len(), 0);
  EXPECT_EQ(session_->pending_tokens(), 0);
  ASSERT_TRUE(session_->EndTurn().ok());
  const FakeSessionService::Calls seen = calls();
  ASSERT_EQ(seen.end_turn.size(), 1u);
  EXPECT_EQ(seen.end_turn[0].expected_context_len(), 0);
  EXPECT_THAT(seen.end_turn[0].tokens(), ElementsAre());
}

TEST_F(SessionTest, EndTurnWithTokensNotSteppedIsRefusedAndSendsNothing) {
  ASSERT_TRUE(session_->Extend({1, 2}).ok());
  absl::Status status = session_->EndTurn();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("EndTurn"));
  EXPECT_TRUE(calls().end_turn.empty());
}

TEST_F(SessionTest, EndTurnCommitsWhatWasWrittenWithTheRetention) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::vector<int32_t> tokens(6);
  std::uniform_int_distribution<int32_t> token(0, 50000);
  for (int32_t& t : tokens) t = token(rng_);
  ASSERT_TRUE(test::ExtendAndStep(*session_, tokens, rng_).ok());
  ASSERT_TRUE(session_->EndTurn(absl::Seconds(90)).ok());
  const FakeSessionService::Calls seen = calls();
  ASSERT_EQ(seen.end_turn.size(), 1u);
  const v1::EndTurnRequest& request = seen.end_turn[0];
  EXPECT_EQ(request.session_id(), session_->id());
  EXPECT_EQ(request.tenant(), kTenant);
  EXPECT_EQ(request.writer(), 101u);
  EXPECT_EQ(request.expected_context_len(), 0);
  EXPECT_THAT(request.tokens(), ElementsAreArray(tokens));
  EXPECT_EQ(request.retain_for().seconds(), 90);
  EXPECT_EQ(request.retain_for().nanos(), 0);
  EXPECT_EQ(session_->context_len(), 6);

  // The next turn's first call commits nothing twice.
  ASSERT_TRUE(test::ExtendAndStep(*session_, {7, 8, 9}, rng_).ok());
  const v1::ExtendRequest next = calls().extend.back();
  EXPECT_EQ(next.expected_context_len(), 6);
  EXPECT_THAT(next.tokens(), ElementsAre());
}

TEST_F(SessionTest, CloseReleasesTheSession) {
  ASSERT_TRUE(session_->Close().ok());
  const FakeSessionService::Calls seen = calls();
  ASSERT_EQ(seen.close_session.size(), 1u);
  EXPECT_EQ(seen.close_session[0].session_id(), session_->id());
  EXPECT_EQ(seen.close_session[0].tenant(), kTenant);
  EXPECT_EQ(session_->Close().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvtier
