// kvtier-generate's three modes agree: recompute, the local KV cache and kvtier (a LocalTier
// with 2 shards on loopback) generate the same tokens, and a pass through the tier gives the
// local cache's logits within fp32 tolerance. The binary runs the modes --modes names, and its
// turns scenario (conversation_test.cc) checked against them.
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/generate/greedy_generate.h"
#include "client/generate/local_kv_cache.h"
#include "client/generate/tier_attention.h"
#include "client/generate/toy_transformer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"
#include "tests/client/generate/toy_tier.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class GenerateTierTest : public ToyTierTest {
 protected:
  std::unique_ptr<TierAttention> NewTierAttention(const ToyTransformer& model) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        client_->OpenSession(TierModelFor(config_).id(), "test");
    EXPECT_TRUE(session.ok()) << session.status();
    absl::StatusOr<std::unique_ptr<TierAttention>> tier =
        TierAttention::Create(model.attention_shape(), *std::move(session));
    EXPECT_TRUE(tier.ok()) << tier.status();
    return *std::move(tier);
  }
};

TEST_F(GenerateTierTest, ThreeModesGenerateTheSameTokens) {
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5, 6, 7, 8}, {511, 0, 256, 9, 9}};
  for (uint64_t seed : {1, 3}) {
    ToyTransformerConfig config = config_;
    config.seed = seed;
    std::unique_ptr<ToyTransformer> model = *ToyTransformer::Create(config);
    for (const std::vector<int32_t>& prompt : prompts) {
      constexpr int kTokens = 20;  // crosses a block boundary of the tier (16 tokens)
      absl::StatusOr<GenerateResult> none = GenerateRecompute(*model, prompt, kTokens);
      ASSERT_TRUE(none.ok()) << none.status();
      std::unique_ptr<LocalKvCache> cache =
          *LocalKvCache::Create(model->attention_shape(), prompt.size() + kTokens);
      absl::StatusOr<GenerateResult> local = GenerateCached(*model, prompt, kTokens, cache.get());
      ASSERT_TRUE(local.ok()) << local.status();
      std::unique_ptr<TierAttention> tier = NewTierAttention(*model);
      absl::StatusOr<GenerateResult> remote = GenerateCached(*model, prompt, kTokens, tier.get());
      ASSERT_TRUE(remote.ok()) << remote.status();

      EXPECT_EQ(none->tokens, local->tokens) << "seed " << seed;
      EXPECT_EQ(none->tokens, remote->tokens) << "seed " << seed;
      EXPECT_EQ(tier->session().context_len(), static_cast<int>(prompt.size()) + kTokens - 1);
      EXPECT_TRUE(tier->session().Close().ok());
    }
  }
}

TEST_F(GenerateTierTest, TierLogitsMatchTheLocalCache) {
  std::unique_ptr<ToyTransformer> model = *ToyTransformer::Create(config_);
  std::unique_ptr<LocalKvCache> cache = *LocalKvCache::Create(model->attention_shape(), 64);
  std::unique_ptr<TierAttention> tier = NewTierAttention(*model);
  const std::vector<std::vector<int32_t>> passes = {{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}, {8}, {9, 7}};
  int position = 0;
  for (const std::vector<int32_t>& pass : passes) {
    std::vector<float> want, got;
    ASSERT_TRUE(model->Forward(pass, position, cache.get(), &want).ok());
    ASSERT_TRUE(model->Forward(pass, position, tier.get(), &got).ok());
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(got[i], want[i], 1e-5 + 1e-4 * std::abs(want[i])) << "logit " << i;
    }
    position += static_cast<int>(pass.size());
  }
}

TEST_F(GenerateTierTest, RejectsAMismatchedModelOrPosition) {
  ToyTransformerConfig other = config_;
  other.head_dim = 32;
  std::unique_ptr<ToyTransformer> model = *ToyTransformer::Create(other);
  absl::StatusOr<std::unique_ptr<Session>> session =
      client_->OpenSession(TierModelFor(config_).id(), "test");
  ASSERT_TRUE(session.ok());
  absl::Status status =
      TierAttention::Create(model->attention_shape(), *std::move(session)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("head_dim"));

  std::unique_ptr<ToyTransformer> right = *ToyTransformer::Create(config_);
  std::unique_ptr<TierAttention> tier = NewTierAttention(*right);
  const std::vector<int32_t> tokens = {1, 2};
  EXPECT_EQ(tier->BeginStep(3, tokens).status().code(), absl::StatusCode::kFailedPrecondition);
}

// kvtier-generate itself, as a user runs it: exit status 0, and what it printed.
std::string RunGenerate(const std::string& coordinator, const std::string& modes,
                        const std::vector<std::string>& flags = {"--tokens=5,20"}) {
  std::vector<std::string> command = {KVTIER_GENERATE_BIN, "--coordinator=" + coordinator,
                                      "--modes=" + modes};
  command.insert(command.end(), flags.begin(), flags.end());
  test::ChildProcess process(command);
  EXPECT_TRUE(process.started());
  const std::string output = process.RestOfOutput();
  const int status = process.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::DescribeExit(status) << "\n"
                                                             << output << process.ErrorOutput();
  return output;
}

// The "first generated tokens:" line.
std::string FirstTokens(const std::string& output) {
  const size_t at = output.find("first generated tokens:");
  return at == std::string::npos ? "" : output.substr(at, output.find('\n', at) - at);
}

TEST_F(GenerateTierTest, TheBinaryRunsTheTierAloneGeneratingWhatAllThreeModesAgreeOn) {
  const std::string all = RunGenerate(tier_->coordinator_address(), "none,local,tier");
  EXPECT_THAT(all, HasSubstr("no-cache t/s      local t/s     kvtier t/s"));
  EXPECT_THAT(all, HasSubstr("tokens identical"));
  EXPECT_THAT(all, Not(HasSubstr("NO")));

  const std::string tier = RunGenerate(tier_->coordinator_address(), "tier");
  EXPECT_THAT(tier, HasSubstr("; tier " + tier_->coordinator_address()));
  EXPECT_THAT(tier, HasSubstr("kvtier t/s"));
  for (const char* absent : {"no-cache", "local", "/no", "tokens identical"}) {
    EXPECT_THAT(tier, Not(HasSubstr(absent))) << tier;
  }
  EXPECT_FALSE(FirstTokens(tier).empty()) << tier;
  EXPECT_EQ(FirstTokens(tier), FirstTokens(all));
}

TEST_F(GenerateTierTest, TheBinaryRunsTheTurnsScenarioCheckedAgainstTheOtherModes) {
  const std::string output = RunGenerate(
      tier_->coordinator_address(), "none,local,tier",
      {"--scenario=turns", "--system_tokens=40", "--message_tokens=6", "--reply_tokens=4"});
  EXPECT_THAT(output, HasSubstr("checked against no-cache and local"));
  EXPECT_THAT(output, HasSubstr("session turn client history prefill cached computed "
                                "first-token-ms generated  tokens identical"));
  // B's first turn: the system prompt's 2 full blocks cached; A's second: 1 + 6 computed.
  EXPECT_THAT(output, HasSubstr("      B    1      1       0      46     32       14"));
  EXPECT_THAT(output, HasSubstr("      A    2      2      49       7      0        7"));
  EXPECT_THAT(output, Not(HasSubstr("NO")));
}

TEST(GenerateBinaryTest, ModesWithoutTheTierNeedNone) {
  const std::string output = RunGenerate("127.0.0.1:1", "local,none");  // nothing listens there
  EXPECT_THAT(output, HasSubstr("no-cache t/s      local t/s   local/no  tokens identical"));
  EXPECT_THAT(output, Not(HasSubstr("kvtier t/s")));
  EXPECT_THAT(output, Not(HasSubstr("; tier ")));
  EXPECT_THAT(output, Not(HasSubstr("NO")));
}

}  // namespace
}  // namespace kvtier
