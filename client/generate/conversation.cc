#include "client/generate/conversation.h"

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "client/generate/greedy_generate.h"
#include "client/generate/tier_attention.h"
#include "client/session.h"

namespace kvtier {
namespace {

// `count` token ids in [0, vocab_size), the same for the same seed and stream.
std::vector<int32_t> DeterministicTokens(uint64_t seed, uint64_t stream, int count,
                                         int vocab_size) {
  SplitMix64 rng(seed ^ (stream * 0x9e3779b97f4a7c15ull));
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = static_cast<int32_t>(rng.Next() % vocab_size);
  return tokens;
}

std::vector<int32_t> Concat(absl::Span<const int32_t> a, absl::Span<const int32_t> b) {
  std::vector<int32_t> joined(a.begin(), a.end());
  joined.insert(joined.end(), b.begin(), b.end());
  return joined;
}

absl::Status CheckOptions(const ConversationOptions& options) {
  const struct {
    const char* field;
    int value;
  } counts[] = {{"system_tokens", options.system_tokens},
                {"message_tokens", options.message_tokens},
                {"reply_tokens", options.reply_tokens}};
  for (const auto& count : counts) {
    if (count.value < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(count.field, ": expected >= 1, got ", count.value));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TierAttention>> Attach(
    const ToyTransformer& model, absl::StatusOr<std::unique_ptr<Session>> session) {
  if (!session.ok()) return session.status();
  return TierAttention::Create(model.attention_shape(), *std::move(session));
}

// One turn of `tier`'s session: generates the reply to `conversation`, whose tokens past the
// session's history are prefilled.
absl::StatusOr<TurnReport> RunTurn(const ToyTransformer& model, TierAttention& tier,
                                   std::string session, int turn, int client,
                                   std::vector<int32_t> conversation, int reply_tokens) {
  TurnReport report;
  report.session = std::move(session);
  report.turn = turn;
  report.client = client;
  report.history_tokens = tier.session().context_len();
  if (report.history_tokens >= static_cast<int>(conversation.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", tier.session().id(), " holds ", report.history_tokens,
                     " tokens, the conversation has only ", conversation.size()));
  }
  const absl::Span<const int32_t> prefill =
      absl::MakeConstSpan(conversation).subspan(report.history_tokens);
  absl::StatusOr<GenerateResult> result =
      ContinueCached(model, prefill, report.history_tokens, reply_tokens, &tier);
  if (!result.ok()) return result.status();
  report.prefill_tokens = static_cast<int>(prefill.size());
  report.cached_tokens = tier.session().turn_cached_tokens();
  // NOTE: every decode pass after the first token computes its one token (a single token is
  // never looked up among the cached prefixes); the rest the turn computed is the prefill's.
  report.computed_tokens = tier.session().turn_computed_tokens() - (reply_tokens - 1);
  report.first_token = result->first_token;
  report.conversation = std::move(conversation);
  report.generated = std::move(result->tokens);
  return report;
}

}  // namespace

absl::StatusOr<std::vector<TurnReport>> RunConversation(const ToyTransformer& model, Client& first,
                                                        Client& second,
                                                        const ConversationOptions& options) {
  if (absl::Status status = CheckOptions(options); !status.ok()) return status;
  const int vocab = model.config().vocab_size;
  const std::vector<int32_t> system =
      DeterministicTokens(options.seed, 1, options.system_tokens, vocab);
  const std::vector<int32_t> a_message =
      DeterministicTokens(options.seed, 2, options.message_tokens, vocab);
  const std::vector<int32_t> b_message =
      DeterministicTokens(options.seed, 3, options.message_tokens, vocab);
  const std::vector<int32_t> a_second_message =
      DeterministicTokens(options.seed, 4, options.message_tokens, vocab);
  std::vector<TurnReport> reports;

  // A, turn 1, kept for the next turn.
  absl::StatusOr<std::unique_ptr<TierAttention>> a =
      Attach(model, first.OpenSession(options.model, options.tenant));
  if (!a.ok()) return a.status();
  const std::string a_id = (*a)->session().id();
  absl::StatusOr<TurnReport> turn =
      RunTurn(model, **a, "A", 1, 1, Concat(system, a_message), options.reply_tokens);
  if (!turn.ok()) return turn.status();
  if (absl::Status status = (*a)->session().EndTurn(options.retain_for); !status.ok()) {
    return status;
  }
  reports.push_back(*std::move(turn));

  // B, turn 1: the same system prompt, its own message.
  absl::StatusOr<std::unique_ptr<TierAttention>> b =
      Attach(model, first.OpenSession(options.model, options.tenant));
  if (!b.ok()) return b.status();
  turn = RunTurn(model, **b, "B", 1, 1, Concat(system, b_message), options.reply_tokens);
  if (!turn.ok()) return turn.status();
  if (absl::Status status = (*b)->session().Close(); !status.ok()) return status;
  reports.push_back(*std::move(turn));

  // A, turn 2, through the second client.
  a = Attach(model, second.ResumeSession(a_id, options.tenant));
  if (!a.ok()) return a.status();
  turn = RunTurn(
      model, **a, "A", 2, 2,
      Concat(Concat(reports.front().conversation, reports.front().generated), a_second_message),
      options.reply_tokens);
  if (!turn.ok()) return turn.status();
  if (absl::Status status = (*a)->session().Close(); !status.ok()) return status;
  reports.push_back(*std::move(turn));
  return reports;
}

}  // namespace kvtier
