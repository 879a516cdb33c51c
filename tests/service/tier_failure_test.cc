// Shard loss through the whole tier: a crashed, stopped or restarted shard makes its sessions
// fail with ABORTED ("re-prefill"), never a wrong answer; a restarted shard rejoins and new
// sessions work; other models' and tenants' sessions are unharmed.
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "client/step.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

class TierFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const uint64_t seed = FreshSeed();
    rng_.seed(seed);
    std::cout << "seed " << seed << "\n";
    absl::StatusOr<Tier> tier = StartTier(FastTier(TestModel("m", 3, 6, 3)));
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = *std::move(tier);
  }

  CheckedSession Prefilled(int tokens) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        tier_.client->OpenSession(TestModelId("m"), "t");
    EXPECT_TRUE(session.ok()) << session.status();
    CheckedSession checked = Checked(*std::move(session));
    absl::Status status = CheckedStep(*tier_.client, {&checked}, {tokens}, rng_);
    EXPECT_TRUE(status.ok()) << status;
    return checked;
  }

  // Waits for the coordinator to count `lost` lost sessions (it notices a crash only when the
  // heartbeats stop).
  void WaitForLostSessions(int64_t lost) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (tier_.local->coordinator().GetStats().models(0).sessions_lost() >= lost) return;
      absl::SleepFor(absl::Milliseconds(10));
    }
    FAIL() << "the coordinator never dropped the sessions";
  }

  Tier tier_;
  std::mt19937_64 rng_;
};

TEST_F(TierFailureTest, CrashedShardFailsSessionsWithReprefillThenRejoins) {
  CheckedSession session = Prefilled(9);
  tier_.local->KillShard(1);

  // Before the coordinator notices, the step fails (UNAVAILABLE, or already the re-prefill
  // status), never succeeds.
  absl::Status early = CheckedStep(*tier_.client, {&session}, {1}, rng_);
  EXPECT_TRUE(absl::IsUnavailable(early) || IsReprefillRequired(early)) << early;

  WaitForLostSessions(1);
  absl::Status status = CheckedStep(*tier_.client, {&session}, {1}, rng_);
  EXPECT_TRUE(IsReprefillRequired(status)) << status;
  EXPECT_NE(status.message().find("re-prefill"), absl::string_view::npos) << status;
  EXPECT_TRUE(IsReprefillRequired(session.session->EndTurn()));
  EXPECT_EQ(tier_.client->OpenSession(TestModelId("m"), "t").status().code(),
            absl::StatusCode::kUnavailable);

  ASSERT_TRUE(tier_.local->RestartShard(1).ok());
  ASSERT_TRUE(tier_.local->WaitUntilReady("m", absl::Seconds(20)).ok());
  CheckedSession fresh = Prefilled(7);
  EXPECT_TRUE(CheckedStep(*tier_.client, {&fresh}, {1}, rng_).ok());
  // The old session stays lost; closing it is allowed.
  EXPECT_TRUE(IsReprefillRequired(CheckedStep(*tier_.client, {&session}, {1}, rng_)));
  EXPECT_TRUE(session.session->Close().ok());
}

// The shard dies between two layers of a step: the step in flight fails (UNAVAILABLE, or the
// re-prefill status once the coordinator knows), never succeeds; after the shard restarts on
// its address, the same client's next step re-opens the stream to it and succeeds.
TEST_F(TierFailureTest, ShardKilledMidStepFailsTheStepAndTheNextStepReopens) {
  CheckedSession session = Prefilled(5);
  ASSERT_TRUE(session.session->Extend({1}).ok());
  absl::StatusOr<std::unique_ptr<Step>> step = session.session->BeginStep();
  ASSERT_TRUE(step.ok()) << step.status();
  const v1::ModelSpec& model = session.session->model();
  const size_t row = size_t{1} * model.head_dim() * 2;  // bf16
  const std::string q(row * model.num_q_heads(), '\0');
  const std::string kv(row * model.num_kv_heads(), '\0');
  std::string out(q.size(), '\0');
  ASSERT_TRUE((*step)->Attend(0, q, kv, kv, absl::MakeSpan(out)).ok());
  tier_.local->KillShard(1);
  const absl::Status failed = (*step)->Attend(1, q, kv, kv, absl::MakeSpan(out));
  EXPECT_TRUE(absl::IsUnavailable(failed) || IsReprefillRequired(failed)) << failed;
  EXPECT_NE(failed.message().find("shard 1"), absl::string_view::npos) << failed;
  EXPECT_EQ((*step)->Finish(), failed);
  EXPECT_EQ(session.session->context_len(), 5);

  WaitForLostSessions(1);
  ASSERT_TRUE(tier_.local->RestartShard(1).ok());
  ASSERT_TRUE(tier_.local->WaitUntilReady("m", absl::Seconds(20)).ok());
  CheckedSession fresh = Prefilled(6);
  EXPECT_TRUE(CheckedStep(*tier_.client, {&fresh}, {1}, rng_).ok());
}

TEST_F(TierFailureTest, StoppedShardFailsSessionsAtOnce) {
  CheckedSession session = Prefilled(5);
  tier_.local->StopShard(2);
  absl::Status status = CheckedStep(*tier_.client, {&session}, {1}, rng_);
  EXPECT_TRUE(IsReprefillRequired(status)) << status;
}

TEST_F(TierFailureTest, ShardRestartedBeforeTimeoutInvalidatesItsSessions) {
  CheckedSession session = Prefilled(6);
  ASSERT_TRUE(tier_.local->RestartShard(0).ok());
  ASSERT_TRUE(tier_.local->WaitUntilReady("m", absl::Seconds(20)).ok());
  // The restarted shard has an empty pool: the old session must not get attention over it.
  absl::Status status = CheckedStep(*tier_.client, {&session}, {1}, rng_);
  EXPECT_TRUE(IsReprefillRequired(status)) << status;

  CheckedSession fresh = Prefilled(6);
  EXPECT_TRUE(CheckedStep(*tier_.client, {&fresh}, {2}, rng_).ok());
}

}  // namespace
}  // namespace kvtier::test
