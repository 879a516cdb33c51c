// Conversation: kvtier-generate's multi-turn scenario, on a tier. Two sessions of one tenant
// (A and B) share a system prompt, each followed by its own user message:
//   A, turn 1: system + message, computed (nothing cached yet on a fresh tier); the turn ends
//              with a retention (Session::EndTurn), which also makes its full blocks matchable;
//   B, turn 1: system + its own message: the system prompt's full blocks are found cached in
//              the tier (A wrote them), only the rest is computed; B is then closed;
//   A, turn 2: resumed through a second client (Client::ResumeSession), as any front-end may:
//              its history is still in the tier, so only what it lacks is computed (A's last
//              generated token, never fed back by a generation, and the new message).
// Each turn is one greedy generation (ContinueCached through a TierAttention). A TurnReport
// says what was cached and computed, and holds the turn's whole conversation so far: a
// generation from scratch over it (no cache at all) must give the same tokens.
//
// The tokens of the prompt and the messages are deterministic (SplitMix64 of options.seed).
//
// Thread-safety: RunConversation may run concurrently with other calls on the same clients;
// a call uses its sessions alone.
#ifndef KVTIER_CLIENT_GENERATE_CONVERSATION_H_
#define KVTIER_CLIENT_GENERATE_CONVERSATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/generate/toy_transformer.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

struct ConversationOptions {
  v1::ModelId model;  // the tier's model, fp32, the generating model's geometry
  std::string tenant;
  int system_tokens = 300;                       // the shared system prompt
  int message_tokens = 12;                       // each user message
  int reply_tokens = 16;                         // generated each turn
  absl::Duration retain_for = absl::Minutes(5);  // A's K/V between its turns
  uint64_t seed = 1;
};

struct TurnReport {
  std::string session;  // "A" or "B"
  int turn = 0;         // 1, 2: the session's turns
  int client = 0;       // 1: the client that opened the sessions; 2: the one that resumed A
  // K/V the session held at the turn's start: its own earlier turns, retained.
  int history_tokens = 0;
  // The turn's prefill, the tokens after the history: those found cached among the tier's
  // prefixes (Session::turn_cached_tokens) and those the prefill computed.
  int prefill_tokens = 0;
  int cached_tokens = 0;
  int computed_tokens = 0;
  absl::Duration first_token;         // wall time of the prefill pass, to the first generated token
  std::vector<int32_t> conversation;  // every token before the reply: system, messages, replies
  std::vector<int32_t> generated;     // the reply: options.reply_tokens tokens
};

// Runs the three turns in order (A1, B1, A2) on `first` (A1, B1) and `second` (A2), and
// returns their reports. INVALID_ARGUMENT naming the option for a count < 1; otherwise the
// tier's or the generation's status.
absl::StatusOr<std::vector<TurnReport>> RunConversation(const ToyTransformer& model, Client& first,
                                                        Client& second,
                                                        const ConversationOptions& options);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_GENERATE_CONVERSATION_H_
