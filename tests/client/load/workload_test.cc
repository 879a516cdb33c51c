// Workload: plans are a function of the seed and the index; a prefix group's sessions share
// its system prompt and its k/v stream, and only it, within a tenant; tenants are drawn from
// their Zipf mix; open-loop arrivals have the rate asked for; a trace replay's plans share the
// tokens and k/v of equal hash ids and arrive at the timestamps / speedup.
#include "client/load/workload.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "client/load/tenant_mix.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

LoadConfig Config(uint64_t seed) {
  LoadConfig config;
  config.seed = seed;
  config.turns = 4;
  config.system_tokens = 40;
  config.prefix_groups = 3;
  config.prompt_tokens = *Distribution::Parse("--prompt_tokens", "uniform:1:30");
  config.think_ms = *Distribution::Parse("--think_ms", "exp:20");
  config.verify_fraction = 0.5;
  return config;
}

class WorkloadTest : public ::testing::Test {
 protected:
  const uint64_t seed_ = std::random_device()();
};

TEST_F(WorkloadTest, PlansDependOnlyOnTheSeedAndTheIndex) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  const Workload a(Config(seed_)), b(Config(seed_));
  for (int64_t index : {0, 1, 17}) {
    const ConversationPlan x = a.Plan(index), y = b.Plan(index);
    EXPECT_EQ(x.seed, y.seed);
    EXPECT_EQ(x.verify, y.verify);
    ASSERT_EQ(x.turns.size(), 4u);
    for (size_t t = 0; t < x.turns.size(); ++t) {
      EXPECT_EQ(x.turns[t].prompt_tokens, y.turns[t].prompt_tokens);
      EXPECT_EQ(x.turns[t].think_before, y.turns[t].think_before);
    }
    EXPECT_EQ(x.turns[0].think_before, absl::ZeroDuration());
  }
  EXPECT_NE(a.Plan(0).seed, a.Plan(1).seed);
}

TEST_F(WorkloadTest, PrefixGroupsShareTheirSystemPromptAndItsKvStreamOnly) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  const LoadConfig config = Config(seed_);
  const Workload workload(config);
  const ConversationPlan first = workload.Plan(0), same_group = workload.Plan(3),
                         other_group = workload.Plan(1);
  EXPECT_EQ(first.prefix_group, same_group.prefix_group);
  EXPECT_NE(first.prefix_group, other_group.prefix_group);
  EXPECT_EQ(workload.SharedPrompt(first).size(), 40u);
  EXPECT_EQ(workload.SharedPrompt(first), workload.SharedPrompt(same_group));
  EXPECT_NE(workload.SharedPrompt(first), workload.SharedPrompt(other_group));
  for (int position : {0, 39}) {
    EXPECT_EQ(workload.KvStream(first, position), workload.KvStream(same_group, position));
    EXPECT_NE(workload.KvStream(first, position), workload.KvStream(other_group, position));
  }
  EXPECT_NE(workload.KvStream(first, 40), workload.KvStream(same_group, 40));
}

TEST_F(WorkloadTest, PrefixGroupsArePerTenant) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  LoadConfig config = Config(seed_);
  config.tenants = 4;
  const Workload workload(config);
  ConversationPlan a = workload.Plan(0), b = a;
  b.tenant = (a.tenant + 1) % 4;  // the same group of another tenant
  EXPECT_NE(workload.SharedPrompt(a), workload.SharedPrompt(b));
  EXPECT_NE(workload.KvStream(a, 0), workload.KvStream(b, 0));
}

TEST_F(WorkloadTest, TenantsFollowTheirMix) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  LoadConfig config = Config(seed_);
  config.tenants = 3;
  config.tenant_skew = 1;
  const Workload workload(config);
  const TenantMix mix(3, 1);
  constexpr int kPlans = 6000;
  std::vector<int> counts(3);
  for (int i = 0; i < kPlans; ++i) ++counts[workload.Plan(i).tenant];
  for (int k = 0; k < 3; ++k) {
    const double p = mix.Probability(k);
    EXPECT_NEAR(counts[k], kPlans * p, 6 * std::sqrt(kPlans * p * (1 - p))) << "tenant " << k;
  }
}

TEST_F(WorkloadTest, AReplaySharesEqualHashIdsAndKeepsTheTimestamps) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  LoadConfig config = Config(seed_);
  config.trace_length_scale = 1.0 / 32;  // 16 tokens per hash id
  config.speedup = 4;
  config.max_requests = 2;
  // Requests 0 and 1 share their first block; 2 arrives after the cut.
  config.trace = {{0, 1000, 64, {7, 8}}, {400, 1100, 0, {7, 9, 10}}, {800, 10, 1, {11}}};
  const Workload workload(config);
  const ConversationPlan a = workload.Plan(0), b = workload.Plan(1);
  ASSERT_EQ(a.turns.size(), 1u);
  EXPECT_EQ(a.turns[0].prompt_tokens, 0);
  EXPECT_EQ(a.turns[0].decode_tokens, 2);
  EXPECT_EQ(b.turns[0].decode_tokens, 1);  // at least one
  // 16 + (1000 - 512) / 32, rounded; 16 + 16 + (1100 - 1024) / 32, rounded.
  EXPECT_EQ(a.shared_tokens, 31);
  EXPECT_EQ(b.shared_tokens, 34);
  const std::vector<int32_t> pa = workload.SharedPrompt(a), pb = workload.SharedPrompt(b);
  ASSERT_EQ(pa.size(), 31u);
  ASSERT_EQ(pb.size(), 34u);
  EXPECT_TRUE(std::equal(pa.begin(), pa.begin() + 16, pb.begin()));
  EXPECT_NE(pa[16], pb[16]);
  EXPECT_EQ(workload.KvStream(a, 15), workload.KvStream(b, 15));
  EXPECT_NE(workload.KvStream(a, 16), workload.KvStream(b, 16));
  EXPECT_EQ(workload.KvStream(a, 31), a.seed);  // the reply is its own
  // The tokens and their k/v are the ids', whatever the seed: a tier may hold them from a run
  // with another.
  LoadConfig reseeded = config;
  reseeded.seed = seed_ + 1;
  const Workload other(reseeded);
  EXPECT_EQ(other.SharedPrompt(other.Plan(0)), pa);
  EXPECT_EQ(other.KvStream(other.Plan(0), 0), workload.KvStream(a, 0));
  EXPECT_EQ(workload.Arrivals(),
            std::vector<absl::Duration>({absl::ZeroDuration(), absl::Milliseconds(100)}));
}

TEST_F(WorkloadTest, ArrivalsHaveTheRate) {
  SCOPED_TRACE(testing::Message() << "seed " << seed_);
  for (double burstiness : {1.0, 3.0}) {
    LoadConfig config = Config(seed_);
    config.session_rate = 200;
    config.burstiness = burstiness;
    config.duration = absl::Seconds(100);
    const std::vector<absl::Duration> arrivals = Workload(config).Arrivals();
    // 20000 expected; the count of a renewal process has stddev about burstiness * sqrt(n).
    EXPECT_NEAR(static_cast<double>(arrivals.size()), 20000, 6 * burstiness * std::sqrt(20000.0));
    ASSERT_FALSE(arrivals.empty());
    EXPECT_TRUE(std::is_sorted(arrivals.begin(), arrivals.end()));
    EXPECT_LT(arrivals.back(), config.duration);
  }
}

}  // namespace
}  // namespace kvtier
