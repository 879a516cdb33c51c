// Greedy generation with a ToyTransformer, with or without a KV cache.
//
// GenerateRecompute runs every step as one forward pass over the whole sequence from position
// 0 (a RecomputeAttention: O(N^2) token-forwards for N tokens). GenerateCached runs one prefill
// pass over the prompt, then one pass per generated token over just that token, through any
// caching LayerAttention (LocalKvCache, the kvtier client); ContinueCached does the same after
// what a cache already holds (the next turn of a conversation). All pick the argmax of the last
// position's logits, the lowest token id on ties, so with backends that agree they produce the
// same tokens.
//
// Thread-safe as far as the model and the backend passed in are (one backend per call).
#ifndef KVTIER_CLIENT_GENERATE_GREEDY_GENERATE_H_
#define KVTIER_CLIENT_GENERATE_GREEDY_GENERATE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/generate/layer_attention.h"
#include "client/generate/toy_transformer.h"

namespace kvtier {

struct GenerateResult {
  std::vector<int32_t> tokens;  // the generated tokens, not the prompt
  // Wall time of the generation, the prompt's prefill included, the same way for every mode;
  // setting up the backend is not included.
  absl::Duration elapsed;
  // Wall time to the first generated token: the prompt's prefill pass (zero when no token is
  // generated).
  absl::Duration first_token;
};

// The index of the largest logit; the lowest such index on ties; -1 when empty. NaN never
// wins.
int32_t GreedyToken(absl::Span<const float> logits);

// Generates num_tokens tokens after `prompt`, recomputing the whole sequence at every step.
// INVALID_ARGUMENT for an empty prompt, a bad token id or num_tokens < 0; INTERNAL when the
// logits are all NaN.
absl::StatusOr<GenerateResult> GenerateRecompute(const ToyTransformer& model,
                                                 absl::Span<const int32_t> prompt, int num_tokens);

// Generates num_tokens tokens after `prompt` through `cache`, which must be empty (a pass
// starts at position 0) and hold prompt.size() + num_tokens - 1 tokens. INVALID_ARGUMENT for an
// empty prompt, a bad token id or num_tokens < 0; INTERNAL when the logits are all NaN;
// otherwise the backend's status.
absl::StatusOr<GenerateResult> GenerateCached(const ToyTransformer& model,
                                              absl::Span<const int32_t> prompt, int num_tokens,
                                              LayerAttention* cache);

// Generates num_tokens tokens after a sequence whose first start_pos tokens `cache` holds
// already: `tokens` are the ones after those (what was never fed to the cache: the last token
// a previous turn generated, then the new message), prefilled in one pass. The cache must hold
// start_pos + tokens.size() + num_tokens - 1 tokens. Errors as GenerateCached, and
// INVALID_ARGUMENT for a negative start_pos.
absl::StatusOr<GenerateResult> ContinueCached(const ToyTransformer& model,
                                              absl::Span<const int32_t> tokens, int start_pos,
                                              int num_tokens, LayerAttention* cache);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_GENERATE_GREEDY_GENERATE_H_
