// Tenant quotas at the coordinator: a tenant filling its cap has its own cached blocks, then its
// own retained sessions, evicted and then is refused with RESOURCE_EXHAUSTED, while another
// tenant's cached prefix, retained session and new sessions are untouched; the flags that
// configure quotas refuse bad entries.
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/tenant_quota_flags.h"
#include "tests/service/coordinator_harness.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

constexpr int kBlockSize = 4;  // TestModel's
constexpr int kBlocks = 32;
constexpr int kQuota = 12;

std::vector<int32_t> Tokens(int32_t first, int count) {
  std::vector<int32_t> tokens(count);
  for (int i = 0; i < count; ++i) tokens[i] = first + i;
  return tokens;
}

class TenantQuotaTest : public ::testing::Test {
 protected:
  explicit TenantQuotaTest(int32_t quota = kQuota) : harness_(Options(quota)) {
    EXPECT_TRUE(
        harness_.coordinator().RegisterModel(TestModel("m", 2, 4, 1, DType::kBF16, kBlocks)).ok());
    harness_.JoinShard("a:1");
  }

  static CoordinatorOptions Options(int32_t quota) {
    CoordinatorOptions options;
    options.session_idle_timeout = absl::Minutes(10);
    options.heartbeat_timeout = absl::Hours(1);
    if (quota > 0) options.tenant_quotas = {{"greedy", quota}};
    return options;
  }

  SessionDriver Open(const std::string& tenant) {
    absl::StatusOr<SessionDriver> session =
        SessionDriver::Open(harness_.coordinator(), TestModelId("m"), tenant);
    EXPECT_TRUE(session.ok()) << session.status();
    return *std::move(session);
  }

  // The bystander's state, made first so it is the oldest in the eviction order: a closed
  // conversation whose 8 full blocks stay cached, and a retained session of 3 blocks.
  void StartBystander() {
    SessionDriver closed = Open("bystander");
    ASSERT_TRUE(closed.Prefill(kBystanderPrefix).ok());
    ASSERT_TRUE(closed.Close().ok());
    retained_.emplace(Open("bystander"));
    ASSERT_TRUE(retained_->Prefill(Tokens(20'000, 3 * kBlockSize)).ok());
    ASSERT_TRUE(retained_->EndTurn({}, absl::Minutes(5)).ok());
  }

  // The greedy tenant churns through ten conversations of 5 blocks, closing each: 50 blocks in
  // all, more than the pool has beside the bystander's.
  void Churn() {
    for (int i = 0; i < 10; ++i) {
      SessionDriver session = Open("greedy");
      ASSERT_TRUE(session.Prefill(Tokens(i * 1000, 5 * kBlockSize)).ok()) << i;
      ASSERT_TRUE(session.Close().ok());
    }
  }

  // The bystander's cached tokens on coming back to its prefix.
  int32_t BystanderCached() {
    SessionDriver again = Open("bystander");
    absl::StatusOr<int32_t> cached = again.Prefill(kBystanderPrefix);
    EXPECT_TRUE(cached.ok()) << cached.status();
    return cached.value_or(-1);
  }

  const std::vector<int32_t> kBystanderPrefix = Tokens(10'000, 8 * kBlockSize + 1);
  CoordinatorHarness harness_;
  std::optional<SessionDriver> retained_;
};

TEST_F(TenantQuotaTest, ATenantAtItsCapEvictsOnlyItsOwnAndIsThenRefused) {
  StartBystander();
  Churn();
  // Holding blocks without ending turns, the greedy tenant reaches its cap and is refused.
  std::vector<SessionDriver> holders;
  absl::Status refused;
  for (int i = 0; i < 10 && refused.ok(); ++i) {
    holders.push_back(Open("greedy"));
    refused = holders.back().Prefill(Tokens(50'000 + i * 1000, 5 * kBlockSize)).status();
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("tenant \"greedy\""));
  EXPECT_THAT(refused.message(), HasSubstr("cap of 12"));
  EXPECT_EQ(holders.size(), 3u);  // two of 5 blocks fit under 12, the third does not

  // The bystander lost nothing: its retained session resumes, its prefix still matches in
  // full, and it opens new sessions while the greedy tenant is refused.
  EXPECT_TRUE(retained_->TakeOver().ok());
  EXPECT_EQ(BystanderCached(), 8 * kBlockSize);
  EXPECT_EQ(harness_.Stats().cache().sessions_evicted(), 0);
}

TEST_F(TenantQuotaTest, ATenantAtItsCapGivesUpItsOwnOldestRetainedSessionFirst) {
  StartBystander();
  // Two retained conversations of 5 blocks each: 10 of the greedy tenant's 12, all held.
  std::vector<SessionDriver> retained;
  for (int i = 0; i < 2; ++i) {
    retained.push_back(Open("greedy"));
    ASSERT_TRUE(retained.back().Prefill(Tokens(i * 1000, 5 * kBlockSize)).ok());
    ASSERT_TRUE(retained.back().EndTurn({}, absl::Minutes(5 + i)).ok());
  }
  // A third needs 5 more: the oldest retained one goes, the tenant's own, not the bystander's.
  SessionDriver third = Open("greedy");
  ASSERT_TRUE(third.Prefill(Tokens(9000, 5 * kBlockSize)).ok());
  const absl::Status lost = retained[0].TakeOver();
  EXPECT_EQ(lost.code(), absl::StatusCode::kFailedPrecondition) << lost;
  EXPECT_THAT(lost.message(), HasSubstr("evicted"));
  EXPECT_TRUE(retained[1].TakeOver().ok());
  EXPECT_TRUE(retained_->TakeOver().ok());
  EXPECT_EQ(BystanderCached(), 8 * kBlockSize);
  EXPECT_EQ(harness_.Stats().cache().sessions_evicted(), 1);
}

class NoQuotaTest : public TenantQuotaTest {
 protected:
  NoQuotaTest() : TenantQuotaTest(/*quota=*/0) {}
};

TEST_F(NoQuotaTest, WithoutAQuotaTheSameChurnEvictsTheBystandersPrefix) {
  // The control for the test above: the same tenants, no cap.
  StartBystander();
  Churn();
  EXPECT_LT(BystanderCached(), 8 * kBlockSize);
}

TEST_F(TenantQuotaTest, ARefusedCallChangesNothing) {
  SessionDriver holder = Open("greedy");
  ASSERT_TRUE(holder.Prefill(Tokens(0, 10 * kBlockSize)).ok());
  const v1::ModelStats before = harness_.Stats();
  SessionDriver second = Open("greedy");
  absl::StatusOr<v1::ExtendResponse> refused = second.Prompt(Tokens(90'000, 3 * kBlockSize));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  const v1::ModelStats after = harness_.Stats();
  EXPECT_EQ(after.blocks_free(), before.blocks_free());
  EXPECT_EQ(after.blocks_cached(), before.blocks_cached());
  // Within the cap, the same session goes on.
  EXPECT_TRUE(second.Prompt(Tokens(90'000, 2 * kBlockSize)).ok());
}

TEST(TenantQuotaFlagsTest, ParsesQuotasAndRefusesBadEntries) {
  absl::flat_hash_map<std::string, int32_t> quotas;
  ASSERT_TRUE(ParseTenantQuotas("acme=4096,globex=1", &quotas).ok());
  EXPECT_EQ(quotas.at("acme"), 4096);
  EXPECT_EQ(quotas.at("globex"), 1);
  for (const char* bad : {"acme", "acme=", "=5", "acme=0", "acme=-3", "acme=x", "a=1,a=2"}) {
    absl::flat_hash_map<std::string, int32_t> parsed;
    const absl::Status status = ParseTenantQuotas(bad, &parsed);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("tenant_quotas"));
  }
}

}  // namespace
}  // namespace kvtier::test
