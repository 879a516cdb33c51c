// kvtier-generate: greedy generation with a small decoder-only transformer (seeded random
// weights) three ways, checked to produce identical tokens, with tokens/s of each:
//   (a) no cache: every step recomputes the K/V of the whole sequence (O(n^2) work);
//   (b) an in-process KV cache (preallocated, O(1) append);
//   (c) kvtier over gRPC: the K/V in a tier's shards, attention computed there.
//
//   kvtier-local --port=50051 &      # serves model "toy" with this geometry, fp32 K/V
//   kvtier-generate --coordinator=127.0.0.1:50051
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/generate/greedy_generate.h"
#include "client/generate/local_kv_cache.h"
#include "client/generate/tier_attention.h"
#include "client/generate/toy_transformer.h"
#include "proto/wire/command_line.h"

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

namespace kvtier {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kvtier-generate: %s\n", status.ToString().c_str());
  return 1;
}

double TokensPerSecond(int tokens, absl::Duration elapsed) {
  return tokens / absl::ToDoubleSeconds(elapsed);
}

// Mode (c): a fresh session per run, closed after.
absl::StatusOr<GenerateResult> GenerateOnTier(Client& client, const ToyTransformer& model,
                                              absl::Span<const int32_t> prompt, int tokens) {
  v1::ModelId id;
  id.set_name(absl::GetFlag(FLAGS_model));
  id.set_version(absl::GetFlag(FLAGS_model_version));
  absl::StatusOr<std::unique_ptr<Session>> session =
      client.OpenSession(id, absl::GetFlag(FLAGS_tenant));
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

int Main() {
  ToyTransformerConfig config;
  config.num_layers = absl::GetFlag(FLAGS_layers);
  config.num_q_heads = absl::GetFlag(FLAGS_q_heads);
  config.num_kv_heads = absl::GetFlag(FLAGS_kv_heads);
  config.head_dim = absl::GetFlag(FLAGS_head_dim);
  config.vocab_size = absl::GetFlag(FLAGS_vocab);
  config.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::unique_ptr<ToyTransformer>> model = ToyTransformer::Create(config);
  if (!model.ok()) return Fail(model.status());

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

  ClientOptions options;
  options.coordinator_address = absl::GetFlag(FLAGS_coordinator);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  if (!client.ok()) return Fail(client.status());

  std::printf(
      "kvtier-generate: %d layers, %d/%d heads, head_dim %d, vocab %d (%.1fM parameters, seed "
      "%llu), prompt %d tokens; tier %s, model %s\n",
      config.num_layers, config.num_q_heads, config.num_kv_heads, config.head_dim,
      config.vocab_size, (*model)->num_parameters() / 1e6,
      static_cast<unsigned long long>(config.seed), prompt_len, options.coordinator_address.c_str(),
      absl::GetFlag(FLAGS_model).c_str());
  std::printf("%7s %14s %14s %14s %10s %10s  %s\n", "tokens", "no-cache t/s", "local t/s",
              "kvtier t/s", "local/no", "kvtier/no", "tokens identical");
  bool all_identical = true;
  for (int tokens : lengths) {
    absl::StatusOr<GenerateResult> none = GenerateRecompute(**model, prompt, tokens);
    if (!none.ok()) return Fail(none.status());

    absl::StatusOr<std::unique_ptr<LocalKvCache>> cache =
        LocalKvCache::Create((*model)->attention_shape(), prompt_len + tokens);
    if (!cache.ok()) return Fail(cache.status());
    absl::StatusOr<GenerateResult> local = GenerateCached(**model, prompt, tokens, cache->get());
    if (!local.ok()) return Fail(local.status());

    absl::StatusOr<GenerateResult> tier = GenerateOnTier(**client, **model, prompt, tokens);
    if (!tier.ok()) return Fail(tier.status());

    const bool identical = none->tokens == local->tokens && none->tokens == tier->tokens;
    all_identical = all_identical && identical;
    const double none_rate = TokensPerSecond(tokens, none->elapsed);
    const double local_rate = TokensPerSecond(tokens, local->elapsed);
    const double tier_rate = TokensPerSecond(tokens, tier->elapsed);
    std::printf("%7d %14.1f %14.1f %14.1f %9.1fx %9.1fx  %s\n", tokens, none_rate, local_rate,
                tier_rate, local_rate / none_rate, tier_rate / none_rate, identical ? "yes" : "NO");
    if (tokens == lengths.back()) {
      std::printf("local KV cache: %.2f MiB preallocated for %d tokens, %.2f MiB used\n",
                  (*cache)->memory_bytes() / 1048576.0, (*cache)->max_tokens(),
                  (*cache)->used_bytes() / 1048576.0);
      std::printf(
          "first generated tokens: %s\n",
          absl::StrJoin(none->tokens.begin(),
                        none->tokens.begin() + std::min<size_t>(16, none->tokens.size()), " ")
              .c_str());
    }
    std::fflush(stdout);
  }
  if (!all_identical) {
    std::fprintf(stderr, "kvtier-generate: the three modes disagree\n");
    return 3;
  }
  return 0;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(argc, argv,
                           "greedy generation without a cache, with a local KV cache and with "
                           "kvtier, compared.\n  kvtier-generate --coordinator=127.0.0.1:50051");
  return kvtier::Main();
}
