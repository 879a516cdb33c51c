// kvtier-generate: greedy generation with a small decoder-only transformer (seeded random
// weights). --scenario=compare (the default) generates up to three ways (--modes), checked to
// produce identical tokens, with tokens/s of each:
//   none:  no cache: every step recomputes the K/V of the whole sequence (O(n^2) work);
//   local: an in-process KV cache (preallocated, O(1) append);
//   tier:  kvtier over gRPC: the K/V in a tier's shards, attention computed there.
// --scenario=turns runs a conversation on the tier (conversation.h): two sessions sharing a
// system prompt, then a second turn of one of them, retained and resumed through another
// client; per turn, the tokens found cached, those computed and the time to the first token,
// each reply checked against a generation from scratch over the whole conversation in the
// other modes of --modes.
//
//   kvtier-local --port=50051 &      # serves model "toy" with this geometry, fp32 K/V
//   kvtier-generate --coordinator=127.0.0.1:50051 [--modes=tier] [--scenario=turns]
#include <algorithm>
#include <array>
#include <cstdio>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/generate/conversation.h"
#include "client/generate/greedy_generate.h"
#include "client/generate/local_kv_cache.h"
#include "client/generate/tier_attention.h"
#include "client/generate/toy_transformer.h"
#include "proto/wire/command_line.h"
#include "proto/wire/security_flags.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "the tier's coordinator, host:port");
ABSL_FLAG(std::string, model, "toy", "the tier's model to use (fp32, the geometry below)");
ABSL_FLAG(std::string, model_version, "", "the version of --model the tier holds");
ABSL_FLAG(std::string, tenant, "kvtier-generate", "tenant the sessions are opened for");
ABSL_FLAG(std::vector<std::string>, tokens,
          std::vector<std::string>({"10", "25", "50", "100", "200"}),
          "generated-token counts to measure");
ABSL_FLAG(int, prompt_tokens, 8, "prompt length");
ABSL_FLAG(int, layers, 4, "transformer layers");
ABSL_FLAG(int, q_heads, 8, "query heads");
ABSL_FLAG(int, kv_heads, 2, "KV heads");
ABSL_FLAG(int, head_dim, 64, "head dimension");
ABSL_FLAG(int, vocab, 512, "vocabulary size");
ABSL_FLAG(uint64_t, seed, 1, "weights and prompt seed");
ABSL_FLAG(std::vector<std::string>, modes, std::vector<std::string>({"none", "local", "tier"}),
          "the ways to generate, a comma list of none (recompute, no cache), local (an "
          "in-process KV cache) and tier (kvtier, at --coordinator); tokens are compared among "
          "those run, and only tier needs a tier");
ABSL_FLAG(std::string, scenario, "compare",
          "compare: generate --tokens tokens after a --prompt_tokens prompt in each mode; "
          "turns: a conversation on the tier (needs tier in --modes): sessions A and B share a "
          "--system_tokens system prompt, each with a --message_tokens user message, then A's "
          "second turn, retained and resumed through a second client; --reply_tokens generated "
          "a turn, each reply checked against the other modes of --modes");
ABSL_FLAG(int, system_tokens, 300, "turns: the shared system prompt's length");
ABSL_FLAG(int, message_tokens, 12, "turns: each user message's length");
ABSL_FLAG(int, reply_tokens, 16, "turns: tokens generated each turn");

namespace kvtier {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kvtier-generate: %s\n", status.ToString().c_str());
  return 1;
}

// The ways to generate, in the order they run and print.
enum Mode { kNoCache, kLocal, kTier, kNumModes };
constexpr absl::string_view kModeFlags[kNumModes] = {"none", "local", "tier"};
constexpr absl::string_view kModeColumns[kNumModes] = {"no-cache", "local", "kvtier"};

// --modes as one flag per mode; INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<std::array<bool, kNumModes>> ParseModes(const std::vector<std::string>& names) {
  std::array<bool, kNumModes> run = {};
  for (const std::string& name : names) {
    const auto* mode = std::find(std::begin(kModeFlags), std::end(kModeFlags), name);
    if (mode == std::end(kModeFlags)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--modes: expected a comma list of none, local and tier, got \"", name, "\""));
    }
    run[mode - std::begin(kModeFlags)] = true;
  }
  if (std::find(run.begin(), run.end(), true) == run.end()) {
    return absl::InvalidArgumentError("--modes: expected at least one of none, local and tier");
  }
  return run;
}

double TokensPerSecond(int tokens, absl::Duration elapsed) {
  return tokens / absl::ToDoubleSeconds(elapsed);
}

v1::ModelId TierModel() {
  v1::ModelId id;
  id.set_name(absl::GetFlag(FLAGS_model));
  id.set_version(absl::GetFlag(FLAGS_model_version));
  return id;
}

// Mode tier: a fresh session per run, closed after.
absl::StatusOr<GenerateResult> GenerateOnTier(Client& client, const ToyTransformer& model,
                                              absl::Span<const int32_t> prompt, int tokens) {
  absl::StatusOr<std::unique_ptr<Session>> session =
      client.OpenSession(TierModel(), absl::GetFlag(FLAGS_tenant));
  if (!session.ok()) return session.status();
  absl::StatusOr<std::unique_ptr<TierAttention>> tier =
      TierAttention::Create(model.attention_shape(), *std::move(session));
  if (!tier.ok()) return tier.status();
  absl::StatusOr<GenerateResult> result = GenerateCached(model, prompt, tokens, tier->get());
  if (absl::Status closed = (*tier)->session().Close(); result.ok() && !closed.ok()) {
    return closed;
  }
  return result;
}

// Generates `tokens` tokens after `prompt` in `mode`, on `client`'s tier for kTier; for
// kLocal, `cache` is set to the KV cache used.
absl::StatusOr<GenerateResult> Generate(Mode mode, const ToyTransformer& model,
                                        absl::Span<const int32_t> prompt, int tokens,
                                        Client* client, std::unique_ptr<LocalKvCache>* cache) {
  switch (mode) {
    case kNoCache:
      return GenerateRecompute(model, prompt, tokens);
    case kLocal: {
      absl::StatusOr<std::unique_ptr<LocalKvCache>> created =
          LocalKvCache::Create(model.attention_shape(), prompt.size() + tokens);
      if (!created.ok()) return created.status();
      *cache = *std::move(created);
      return GenerateCached(model, prompt, tokens, cache->get());
    }
    case kTier:
      return GenerateOnTier(*client, model, prompt, tokens);
    case kNumModes:
      break;
  }
  return absl::InternalError("mode: out of range");
}

// --scenario=compare: the table of tokens/s per mode, --tokens rows.
int RunComparison(const std::array<bool, kNumModes>& run, const ToyTransformer& model,
                  Client* client) {
  int modes_run = 0;
  for (bool mode : run) modes_run += mode ? 1 : 0;
  const ToyTransformerConfig& config = model.config();
  std::vector<int> lengths;
  for (const std::string& text : absl::GetFlag(FLAGS_tokens)) {
    int tokens = 0;
    if (!absl::SimpleAtoi(text, &tokens) || tokens < 1) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--tokens: expected counts >= 1, got \"", text, "\"")));
    }
    lengths.push_back(tokens);
  }
  const int prompt_len = absl::GetFlag(FLAGS_prompt_tokens);
  if (prompt_len < 1) return Fail(absl::InvalidArgumentError("--prompt_tokens: expected >= 1"));
  std::vector<int32_t> prompt(prompt_len);
  SplitMix64 rng(config.seed ^ 0x5eed);
  for (int32_t& token : prompt) token = static_cast<int32_t>(rng.Next() % config.vocab_size);

  const std::string tier = run[kTier] ? absl::StrCat("; tier ", absl::GetFlag(FLAGS_coordinator),
                                                     ", model ", absl::GetFlag(FLAGS_model))
                                      : "";
  std::printf(
      "kvtier-generate: %d layers, %d/%d heads, head_dim %d, vocab %d (%.1fM parameters, seed "
      "%llu), prompt %d tokens%s\n",
      config.num_layers, config.num_q_heads, config.num_kv_heads, config.head_dim,
      config.vocab_size, model.num_parameters() / 1e6, static_cast<unsigned long long>(config.seed),
      prompt_len, tier.c_str());
  std::string header = absl::StrFormat("%7s", "tokens");
  for (int mode = 0; mode < kNumModes; ++mode) {
    if (run[mode]) {
      absl::StrAppendFormat(&header, " %14s", absl::StrCat(kModeColumns[mode], " t/s"));
    }
  }
  for (int mode = kNoCache + 1; mode < kNumModes; ++mode) {
    if (run[kNoCache] && run[mode]) {
      absl::StrAppendFormat(&header, " %10s", absl::StrCat(kModeColumns[mode], "/no"));
    }
  }
  if (modes_run > 1) absl::StrAppend(&header, "  tokens identical");
  std::printf("%s\n", header.c_str());

  bool all_identical = true;
  for (int tokens : lengths) {
    std::array<std::optional<GenerateResult>, kNumModes> results;
    std::unique_ptr<LocalKvCache> cache;
    for (int mode = 0; mode < kNumModes; ++mode) {
      if (!run[mode]) continue;
      absl::StatusOr<GenerateResult> result =
          Generate(static_cast<Mode>(mode), model, prompt, tokens, client, &cache);
      if (!result.ok()) return Fail(result.status());
      results[mode] = *std::move(result);
    }

    const GenerateResult* first = nullptr;
    bool identical = true;
    std::string row = absl::StrFormat("%7d", tokens);
    for (const std::optional<GenerateResult>& result : results) {
      if (!result.has_value()) continue;
      if (first == nullptr) first = &*result;
      identical = identical && result->tokens == first->tokens;
      absl::StrAppendFormat(&row, " %14.1f", TokensPerSecond(tokens, result->elapsed));
    }
    for (int mode = kNoCache + 1; mode < kNumModes; ++mode) {
      if (!results[kNoCache].has_value() || !results[mode].has_value()) continue;
      absl::StrAppendFormat(&row, " %9.1fx",
                            absl::ToDoubleSeconds(results[kNoCache]->elapsed) /
                                absl::ToDoubleSeconds(results[mode]->elapsed));
    }
    if (modes_run > 1) absl::StrAppend(&row, "  ", identical ? "yes" : "NO");
    std::printf("%s\n", row.c_str());
    all_identical = all_identical && identical;
    if (tokens == lengths.back()) {
      if (cache != nullptr) {
        std::printf("local KV cache: %.2f MiB preallocated for %d tokens, %.2f MiB used\n",
                    cache->memory_bytes() / 1048576.0, cache->max_tokens(),
                    cache->used_bytes() / 1048576.0);
      }
      std::printf(
          "first generated tokens: %s\n",
          absl::StrJoin(first->tokens.begin(),
                        first->tokens.begin() + std::min<size_t>(16, first->tokens.size()), " ")
              .c_str());
    }
    std::fflush(stdout);
  }
  if (!all_identical) {
    std::fprintf(stderr, "kvtier-generate: the modes disagree\n");
    return 3;
  }
  return 0;
}

// --scenario=turns: the conversation on the tier, each reply checked against the other modes
// run, each over the whole conversation from scratch.
int RunTurns(const std::array<bool, kNumModes>& run, const ToyTransformer& model,
             const ClientOptions& options, Client& first) {
  absl::StatusOr<std::unique_ptr<Client>> second = Client::Connect(options);
  if (!second.ok()) return Fail(second.status());
  ConversationOptions conversation;
  conversation.model = TierModel();
  conversation.tenant = absl::GetFlag(FLAGS_tenant);
  conversation.system_tokens = absl::GetFlag(FLAGS_system_tokens);
  conversation.message_tokens = absl::GetFlag(FLAGS_message_tokens);
  conversation.reply_tokens = absl::GetFlag(FLAGS_reply_tokens);
  conversation.seed = model.config().seed;
  std::vector<std::string> references;
  for (Mode mode : {kNoCache, kLocal}) {
    if (run[mode]) references.emplace_back(kModeColumns[mode]);
  }
  const std::string checked =
      references.empty() ? ""
                         : absl::StrCat(", checked against ", absl::StrJoin(references, " and "),
                                        " over the whole conversation");
  std::printf(
      "kvtier-generate: turns on tier %s, model %s, tenant %s: sessions A and B share a "
      "%d-token system prompt, each with a %d-token message; A retained %s between its turns, "
      "its turn 2 resumed by a second client; %d tokens a reply%s\n",
      options.coordinator_address.c_str(), conversation.model.name().c_str(),
      conversation.tenant.c_str(), conversation.system_tokens, conversation.message_tokens,
      absl::FormatDuration(conversation.retain_for).c_str(), conversation.reply_tokens,
      checked.c_str());
  absl::StatusOr<std::vector<TurnReport>> turns =
      RunConversation(model, first, **second, conversation);
  if (!turns.ok()) return Fail(turns.status());

  std::string header =
      "session turn client history prefill cached computed first-token-ms generated";
  if (!references.empty()) absl::StrAppend(&header, "  tokens identical");
  std::printf("%s\n", header.c_str());
  bool all_identical = true;
  for (const TurnReport& turn : *turns) {
    bool identical = true;
    for (Mode mode : {kNoCache, kLocal}) {
      if (!run[mode]) continue;
      std::unique_ptr<LocalKvCache> cache;
      absl::StatusOr<GenerateResult> reference = Generate(
          mode, model, turn.conversation, static_cast<int>(turn.generated.size()), nullptr, &cache);
      if (!reference.ok()) return Fail(reference.status());
      if (reference->tokens != turn.generated) {
        identical = false;
        std::fprintf(stderr, "kvtier-generate: session %s turn %d: the tier generated %s, %s %s\n",
                     turn.session.c_str(), turn.turn, absl::StrJoin(turn.generated, " ").c_str(),
                     kModeColumns[mode].data(), absl::StrJoin(reference->tokens, " ").c_str());
      }
    }
    std::string row = absl::StrFormat(
        "%7s %4d %6d %7d %7d %6d %8d %14.1f %9d", turn.session, turn.turn, turn.client,
        turn.history_tokens, turn.prefill_tokens, turn.cached_tokens, turn.computed_tokens,
        absl::ToDoubleMilliseconds(turn.first_token), turn.generated.size());
    if (!references.empty()) absl::StrAppend(&row, "  ", identical ? "yes" : "NO");
    std::printf("%s\n", row.c_str());
    std::fflush(stdout);
    all_identical = all_identical && identical;
  }
  if (!all_identical) {
    std::fprintf(stderr, "kvtier-generate: the tier's conversation disagrees with %s\n",
                 absl::StrJoin(references, " and ").c_str());
    return 3;
  }
  return 0;
}

int Main() {
  absl::StatusOr<std::array<bool, kNumModes>> run = ParseModes(absl::GetFlag(FLAGS_modes));
  if (!run.ok()) return Fail(run.status());
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  if (scenario != "compare" && scenario != "turns") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--scenario: expected compare or turns, got \"", scenario, "\"")));
  }
  if (scenario == "turns" && !(*run)[kTier]) {
    return Fail(
        absl::InvalidArgumentError("--scenario=turns runs on the tier: --modes must include tier"));
  }

  ToyTransformerConfig config;
  config.num_layers = absl::GetFlag(FLAGS_layers);
  config.num_q_heads = absl::GetFlag(FLAGS_q_heads);
  config.num_kv_heads = absl::GetFlag(FLAGS_kv_heads);
  config.head_dim = absl::GetFlag(FLAGS_head_dim);
  config.vocab_size = absl::GetFlag(FLAGS_vocab);
  config.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::unique_ptr<ToyTransformer>> model = ToyTransformer::Create(config);
  if (!model.ok()) return Fail(model.status());

  ClientOptions options;
  options.coordinator_address = absl::GetFlag(FLAGS_coordinator);
  absl::StatusOr<ChannelSecurity> security = ChannelSecurityFromFlags();
  if (!security.ok()) return Fail(security.status());
  options.security = *std::move(security);
  std::unique_ptr<Client> client;
  if ((*run)[kTier]) {
    absl::StatusOr<std::unique_ptr<Client>> connected = Client::Connect(options);
    if (!connected.ok()) return Fail(connected.status());
    client = *std::move(connected);
  }
  return scenario == "turns" ? RunTurns(*run, **model, options, *client)
                             : RunComparison(*run, **model, client.get());
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(argc, argv,
                           "greedy generation without a cache, with a local KV cache and with "
                           "kvtier (--modes), compared; or (--scenario=turns) a conversation on "
                           "kvtier showing shared prefixes and retention across turns.\n"
                           "  kvtier-generate --coordinator=127.0.0.1:50051 [--modes=tier] "
                           "[--scenario=turns]");
  return kvtier::Main();
}
