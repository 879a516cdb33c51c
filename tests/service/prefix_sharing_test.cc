// Prefix sharing, retention and eviction in the Coordinator, called directly with an injected
// clock: prompts matched against cached full blocks (within a tenant, or a public tenant's
// when configured, never the last token), only committed blocks matchable, retention that
// soft-pins and then demotes a session to cached blocks, separate idle and retention
// deadlines, and memory pressure that evicts cached blocks, then retained sessions oldest
// deadline first, then refuses without changing anything.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "tests/service/coordinator_harness.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::ElementsAreArray;

constexpr int kBlockSize = 4;  // TestModel's

// Tokens first, first + 1, ...
std::vector<int32_t> Tokens(int32_t first, int count) {
  std::vector<int32_t> tokens(count);
  for (int i = 0; i < count; ++i) tokens[i] = first + i;
  return tokens;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class PrefixSharingTest : public ::testing::Test {
 protected:
  explicit PrefixSharingTest(CoordinatorOptions options = {}, int num_blocks = 64)
      : harness_(Defaults(std::move(options))) {
    EXPECT_TRUE(harness_.coordinator()
                    .RegisterModel(TestModel("m", 2, 4, 1, DType::kBF16, num_blocks))
                    .ok());
    harness_.JoinShard("a:1");
  }

  static CoordinatorOptions Defaults(CoordinatorOptions options) {
    options.session_idle_timeout = absl::Minutes(10);
    options.heartbeat_timeout = absl::Hours(1);
    return options;
  }

  SessionDriver Open(const std::string& tenant = "t") {
    absl::StatusOr<SessionDriver> session =
        SessionDriver::Open(harness_.coordinator(), TestModelId("m"), tenant);
    EXPECT_TRUE(session.ok()) << session.status();
    return *std::move(session);
  }

  int32_t Prefill(SessionDriver& session, const std::vector<int32_t>& prompt) {
    absl::StatusOr<int32_t> cached = session.Prefill(prompt);
    EXPECT_TRUE(cached.ok()) << cached.status();
    return cached.value_or(-1);
  }

  CoordinatorHarness harness_;
};

TEST_F(PrefixSharingTest, SharesTheFullBlocksOfAPromptWithinATenant) {
  const std::vector<int32_t> shared = Tokens(100, 3 * kBlockSize);
  SessionDriver a = Open();
  EXPECT_EQ(Prefill(a, Concat(shared, {1, 2})), 0);

  SessionDriver b = Open();
  absl::StatusOr<v1::ExtendResponse> matched = b.Prompt(Concat(shared, {7, 8, 9}));
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(matched->cached_tokens(), 12);
  EXPECT_EQ(matched->context_len(), 12);
  // b's block table starts with a's blocks, read-only for b; room for the uncached rest.
  ASSERT_EQ(matched->lease().blocks_size(), 4);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(matched->lease().blocks(i), a.lease().blocks(i));
  EXPECT_NE(matched->lease().blocks(3), a.lease().blocks(3));
  EXPECT_EQ(matched->lease().writable_from(), 12);

  const v1::ModelStats stats = harness_.Stats();
  EXPECT_EQ(stats.cache().prompt_tokens(), 14 + 15);
  EXPECT_EQ(stats.cache().cached_tokens(), 12);
  EXPECT_EQ(stats.cache().blocks_cached(), 3);
  ASSERT_EQ(stats.tenants_size(), 1);
  EXPECT_EQ(stats.tenants(0).tenant(), "t");
  EXPECT_EQ(stats.tenants(0).cache().cached_tokens(), 12);
}

TEST_F(PrefixSharingTest, NeverMatchesThePromptsLastToken) {
  const std::vector<int32_t> prompt = Tokens(100, 3 * kBlockSize);
  SessionDriver a = Open();
  Prefill(a, prompt);
  SessionDriver b = Open();
  absl::StatusOr<v1::ExtendResponse> matched = b.Prompt(prompt);
  ASSERT_TRUE(matched.ok());
  EXPECT_EQ(matched->cached_tokens(), 8);  // the last block holds the last token
  SessionDriver c = Open();
  matched = c.Prompt({100});
  ASSERT_TRUE(matched.ok());
  EXPECT_EQ(matched->cached_tokens(), 0);
}

// Invariant 8 and the timing side channel: a shared cache leaks prompts, so tenants never
// match each other's blocks.
TEST_F(PrefixSharingTest, TenantsNeverMatchEachOther) {
  const std::vector<int32_t> prompt = Tokens(5, 5 * kBlockSize);
  SessionDriver a = Open("tenant-a");
  Prefill(a, prompt);
  SessionDriver b = Open("tenant-b");
  EXPECT_EQ(Prefill(b, prompt), 0);
  SessionDriver a2 = Open("tenant-a");
  EXPECT_EQ(Prefill(a2, prompt), 16);
  const v1::ModelStats stats = harness_.Stats();
  ASSERT_EQ(stats.tenants_size(), 2);
  EXPECT_EQ(stats.tenants(0).tenant(), "tenant-a");
  EXPECT_EQ(stats.tenants(0).cache().cached_tokens(), 16);
  EXPECT_EQ(stats.tenants(1).cache().cached_tokens(), 0);
}

// Invariant 2: blocks become matchable only once committed; a front-end that dies mid-prefill
// leaves only what it committed.
TEST_F(PrefixSharingTest, OnlyCommittedFullBlocksAreMatchable) {
  const std::vector<int32_t> prompt = Tokens(50, 3 * kBlockSize + 1);
  SessionDriver dying = Open();
  absl::StatusOr<v1::ExtendResponse> reserved = dying.Prompt(prompt);
  ASSERT_TRUE(reserved.ok());
  ASSERT_EQ(reserved->cached_tokens(), 0);
  SessionDriver early = Open();
  EXPECT_EQ(early.Prompt(prompt)->cached_tokens(), 0);  // reserved, nothing written
  ASSERT_TRUE(dying.Commit(Tokens(50, 6)).ok());        // one full block committed, then dies
  SessionDriver late = Open();
  EXPECT_EQ(late.Prompt(prompt)->cached_tokens(), 4);
  ASSERT_TRUE(dying.Close().ok());
  SessionDriver after = Open();
  EXPECT_EQ(after.Prompt(prompt)->cached_tokens(), 4);
}

class PublicPrefixTest : public PrefixSharingTest {
 protected:
  PublicPrefixTest() : PrefixSharingTest(PublicTenant("operator")) {}
  static CoordinatorOptions PublicTenant(const std::string& tenant) {
    CoordinatorOptions options;
    options.public_tenant = tenant;
    return options;
  }
};

TEST_F(PublicPrefixTest, EveryTenantMatchesThePublicPrefixButNotEachOthersContinuation) {
  const std::vector<int32_t> system = Tokens(1000, 2 * kBlockSize);
  const std::vector<int32_t> question = Tokens(7, 2 * kBlockSize + 1);
  SessionDriver public_session = Open("operator");
  Prefill(public_session, Concat(system, {1}));

  SessionDriver x = Open("x");
  EXPECT_EQ(Prefill(x, Concat(system, question)), 8);
  // x's continuation is x's own: x matches it after the public prefix, y does not.
  SessionDriver x_again = Open("x");
  EXPECT_EQ(Prefill(x_again, Concat(system, question)), 16);
  SessionDriver y = Open("y");
  EXPECT_EQ(Prefill(y, Concat(system, question)), 8);
}

TEST_F(PrefixSharingTest, NothingIsPublicUnlessConfigured) {
  const std::vector<int32_t> system = Tokens(1000, 2 * kBlockSize);
  SessionDriver public_session = Open("operator");
  Prefill(public_session, Concat(system, {1}));
  SessionDriver x = Open("x");
  EXPECT_EQ(Prefill(x, Concat(system, {2})), 0);
}

TEST_F(PrefixSharingTest, RetentionSoftPinsThenDemotesToCachedBlocks) {
  const std::vector<int32_t> prompt = Tokens(300, 2 * kBlockSize + 2);
  SessionDriver a = Open();
  Prefill(a, prompt);
  ASSERT_TRUE(a.EndTurn({}, absl::Seconds(30)).ok());
  EXPECT_EQ(harness_.Stats().cache().sessions_retained(), 1);

  harness_.Advance(absl::Seconds(29));
  ASSERT_TRUE(a.TakeOver().ok());  // resumed from any front-end
  EXPECT_EQ(a.context_len(), 10);
  ASSERT_TRUE(a.EndTurn({}, absl::Seconds(30)).ok());
  const int32_t used = harness_.Stats().blocks_used();
  EXPECT_EQ(used, 3);

  harness_.Advance(absl::Seconds(31));
  EXPECT_EQ(a.TakeOver().code(), absl::StatusCode::kNotFound);
  const v1::ModelStats stats = harness_.Stats();
  EXPECT_EQ(stats.cache().sessions_expired(), 1);
  EXPECT_EQ(stats.blocks_used(), 0);
  EXPECT_EQ(stats.blocks_cached(), 2);  // the full blocks; the private tail is freed
  EXPECT_EQ(stats.sessions(), 0);
  SessionDriver b = Open();
  EXPECT_EQ(Prefill(b, Concat(prompt, {1})), 8);
}

TEST_F(PrefixSharingTest, IdleTimeoutAndRetentionAreSeparateDeadlines) {
  SessionDriver retained = Open();
  Prefill(retained, Tokens(0, 5));
  ASSERT_TRUE(retained.EndTurn({}, absl::Hours(1)).ok());
  SessionDriver idle = Open();
  Prefill(idle, Tokens(100, 5));

  harness_.Advance(absl::Minutes(11));  // past the idle timeout, within the retention
  EXPECT_EQ(idle.TakeOver().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(retained.TakeOver().ok());
  // Taken over, it is active again: idle deadline from now.
  harness_.Advance(absl::Minutes(9));
  EXPECT_TRUE(retained.Commit({1, 2}).ok());
  harness_.Advance(absl::Minutes(11));
  EXPECT_EQ(retained.TakeOver().code(), absl::StatusCode::kNotFound);
}

// A pool of 8 blocks under pressure (invariant 6): unreferenced cached blocks go first, then
// retained sessions, oldest deadline first, and only then RESOURCE_EXHAUSTED, which changes
// nothing.
class PressureTest : public PrefixSharingTest {
 protected:
  explicit PressureTest(bool evict_retained = true)
      : PrefixSharingTest(EvictRetained(evict_retained), 8) {}
  static CoordinatorOptions EvictRetained(bool evict) {
    CoordinatorOptions options;
    options.evict_retained_sessions = evict;
    return options;
  }

  void SetUp() override {
    late_.emplace(Open());
    Prefill(*late_, Tokens(0, 8));
    ASSERT_TRUE(late_->EndTurn({}, absl::Seconds(100)).ok());
    early_.emplace(Open());
    Prefill(*early_, Tokens(100, 8));
    ASSERT_TRUE(early_->EndTurn({}, absl::Seconds(50)).ok());
    SessionDriver gone = Open();
    Prefill(gone, Tokens(200, 8));
    ASSERT_TRUE(gone.Close().ok());
    const v1::ModelStats stats = harness_.Stats();
    ASSERT_EQ(stats.blocks_used(), 4);
    ASSERT_EQ(stats.blocks_cached(), 2);
    ASSERT_EQ(stats.blocks_free(), 2);
  }

  std::optional<SessionDriver> late_, early_;
};

TEST_F(PressureTest, EvictsCachedBlocksThenRetainedSessionsOldestFirstThenRefuses) {
  SessionDriver d = Open();
  ASSERT_TRUE(d.Commit({}, 4 * kBlockSize).ok());  // 2 free + the 2 cached
  EXPECT_EQ(harness_.Stats().cache().blocks_evicted(), 2);
  EXPECT_EQ(harness_.Stats().cache().sessions_evicted(), 0);

  SessionDriver e = Open();
  ASSERT_TRUE(e.Commit({}, 2 * kBlockSize).ok());  // evicts the earliest deadline only
  const absl::Status evicted = early_->TakeOver();
  EXPECT_EQ(evicted.code(), absl::StatusCode::kFailedPrecondition) << evicted;
  EXPECT_EQ(ReasonOf(evicted), v1::ERROR_REASON_REPREFILL_REQUIRED) << evicted;
  EXPECT_EQ(harness_.Stats().cache().sessions_evicted(), 1);

  // Even evicting the last retained session leaves too few: refused, and nothing changed.
  SessionDriver f = Open();
  const v1::ModelStats before = harness_.Stats();
  const absl::Status refused = f.Commit({}, 4 * kBlockSize).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  const v1::ModelStats after = harness_.Stats();
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  EXPECT_TRUE(late_->TakeOver().ok());
  EXPECT_EQ(late_->context_len(), 8);
}

class NoRetainedEvictionTest : public PressureTest {
 protected:
  NoRetainedEvictionTest() : PressureTest(/*evict_retained=*/false) {}
};

TEST_F(NoRetainedEvictionTest, RefusesRatherThanEvictARetainedSession) {
  SessionDriver d = Open();
  ASSERT_TRUE(d.Commit({}, 4 * kBlockSize).ok());
  SessionDriver e = Open();
  EXPECT_EQ(e.Commit({}, kBlockSize).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(early_->TakeOver().ok());
  EXPECT_EQ(harness_.Stats().cache().sessions_evicted(), 0);
}

// A refused Extend commits nothing: the front-end keeps its session and retries.
TEST_F(PressureTest, ARefusedExtendLeavesTheWrittenTokensUncommitted) {
  SessionDriver d = Open();
  ASSERT_TRUE(d.Commit({}, 3).ok());
  const absl::Status refused = d.Commit({1, 2, 3}, 64 * kBlockSize).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(d.context_len(), 0);
  absl::StatusOr<v1::ExtendResponse> retried = d.Commit({1, 2, 3});
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->context_len(), 3);
  EXPECT_TRUE(early_->TakeOver().ok());
}

}  // namespace
}  // namespace kvtier::test
