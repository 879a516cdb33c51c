// The multi-turn scenario on a LocalTier: every reply equals a generation from scratch over the
// whole conversation; the second session finds the shared system prompt's full blocks cached;
// the retained session, resumed through another client, computes only what its history lacks.
#include "client/generate/conversation.h"

#include <memory>
#include <vector>

#include "client/generate/greedy_generate.h"
#include "client/generate/toy_transformer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/generate/toy_tier.h"

namespace kvtier {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

constexpr int kBlockSize = 16;  // TierModelFor's

class ConversationTest : public ToyTierTest {
 protected:
  ConversationOptions Options(int system_tokens) const {
    ConversationOptions options;
    options.model = TierModelFor(config_).id();
    options.tenant = "test";
    options.system_tokens = system_tokens;
    options.message_tokens = 6;
    options.reply_tokens = 5;
    options.seed = system_tokens;  // prompts that no other case cached
    return options;
  }
};

TEST_F(ConversationTest, SharesTheSystemPromptAndRetainsTheFirstSession) {
  std::unique_ptr<ToyTransformer> model = *ToyTransformer::Create(config_);
  // 40: two full blocks and a partial one; 32: exactly two blocks.
  for (int system_tokens : {40, 32}) {
    SCOPED_TRACE(system_tokens);
    const ConversationOptions options = Options(system_tokens);
    std::unique_ptr<Client> second = NewClient();
    absl::StatusOr<std::vector<TurnReport>> turns =
        RunConversation(*model, *client_, *second, options);
    ASSERT_TRUE(turns.ok()) << turns.status();
    ASSERT_THAT(*turns,
                ElementsAre(Field(&TurnReport::session, "A"), Field(&TurnReport::session, "B"),
                            Field(&TurnReport::session, "A")));

    for (const TurnReport& turn : *turns) {
      absl::StatusOr<GenerateResult> recomputed =
          GenerateRecompute(*model, turn.conversation, options.reply_tokens);
      ASSERT_TRUE(recomputed.ok()) << recomputed.status();
      EXPECT_EQ(turn.generated, recomputed->tokens) << turn.session << turn.turn;
      EXPECT_EQ(turn.history_tokens + turn.prefill_tokens,
                static_cast<int>(turn.conversation.size()));
      EXPECT_EQ(turn.cached_tokens + turn.computed_tokens, turn.prefill_tokens);
    }

    const TurnReport& a1 = (*turns)[0];
    const int prompt = system_tokens + options.message_tokens;
    EXPECT_EQ(a1.turn, 1);
    EXPECT_EQ(a1.client, 1);
    EXPECT_EQ(a1.history_tokens, 0);
    EXPECT_EQ(a1.cached_tokens, 0);  // a fresh tier
    EXPECT_EQ(a1.computed_tokens, prompt);

    // B: the system prompt's full blocks, and nothing of the message, are found cached.
    const TurnReport& b1 = (*turns)[1];
    EXPECT_EQ(b1.turn, 1);
    EXPECT_EQ(b1.history_tokens, 0);
    EXPECT_EQ(b1.prefill_tokens, prompt);
    EXPECT_EQ(b1.cached_tokens, system_tokens / kBlockSize * kBlockSize);
    EXPECT_EQ(b1.computed_tokens, prompt - b1.cached_tokens);
    EXPECT_EQ(
        std::vector<int32_t>(b1.conversation.begin(), b1.conversation.begin() + system_tokens),
        std::vector<int32_t>(a1.conversation.begin(), a1.conversation.begin() + system_tokens));

    // A again, on the second client: its history is retained; only its last reply token (a
    // generation never feeds its last token back) and the new message are computed.
    const TurnReport& a2 = (*turns)[2];
    EXPECT_EQ(a2.turn, 2);
    EXPECT_EQ(a2.client, 2);
    EXPECT_EQ(a2.history_tokens, prompt + options.reply_tokens - 1);
    EXPECT_EQ(a2.cached_tokens, 0);
    EXPECT_EQ(a2.computed_tokens, 1 + options.message_tokens);
    std::vector<int32_t> before = a1.conversation;
    before.insert(before.end(), a1.generated.begin(), a1.generated.end());
    EXPECT_EQ(
        std::vector<int32_t>(a2.conversation.begin(), a2.conversation.begin() + before.size()),
        before);
  }
}

TEST_F(ConversationTest, RejectsACountBelowOne) {
  std::unique_ptr<ToyTransformer> model = *ToyTransformer::Create(config_);
  ConversationOptions options = Options(40);
  options.reply_tokens = 0;
  const absl::Status status = RunConversation(*model, *client_, *client_, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("reply_tokens: expected >= 1, got 0"));
}

}  // namespace
}  // namespace kvtier
