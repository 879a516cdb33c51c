// Workload: plans are a function of the seed and the index; a prefix group's sessions share
// its system prompt and its k/v stream, and only it; open-loop arrivals have the rate asked for.
#include "client/load/workload.h"

#include <cmath>
#include <random>

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
  EXPECT_EQ(workload.SystemPrompt(0).size(), 40u);
  EXPECT_NE(workload.SystemPrompt(0), workload.SystemPrompt(1));
  for (int position : {0, 39}) {
    EXPECT_EQ(workload.KvStream(first, position), workload.KvStream(same_group, position));
    EXPECT_NE(workload.KvStream(first, position), workload.KvStream(other_group, position));
  }
  EXPECT_NE(workload.KvStream(first, 40), workload.KvStream(same_group, 40));
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
