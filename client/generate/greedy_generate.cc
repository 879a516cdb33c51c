#include "client/generate/greedy_generate.h"

#include <cmath>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "client/generate/recompute_attention.h"

namespace kvtier {
namespace {

// `field` names the tokens in messages.
absl::Status CheckArguments(const ToyTransformer& model, absl::string_view field,
                            absl::Span<const int32_t> tokens, int num_tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty"));
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= model.config().vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: expected a token id in [0, ", model.config().vocab_size,
                       "), got ", tokens[i]));
    }
  }
  if (num_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_tokens: must be >= 0, got ", num_tokens));
  }
  return absl::OkStatus();
}

// The greedy pick, or INTERNAL when every logit is NaN.
absl::StatusOr<int32_t> PickToken(absl::Span<const float> logits) {
  const int32_t token = GreedyToken(logits);
  if (token < 0) return absl::InternalError("logits: no token to pick (all NaN)");
  return token;
}

// The generation loop of GenerateCached and ContinueCached, on checked arguments.
absl::StatusOr<GenerateResult> GenerateAfter(const ToyTransformer& model,
                                             absl::Span<const int32_t> tokens, int start_pos,
                                             int num_tokens, LayerAttention* cache) {
  GenerateResult result;
  result.tokens.reserve(num_tokens);
  std::vector<float> logits;
  // Timed from here: every pass, the prompt's prefill included, as in GenerateRecompute.
  const absl::Time start = absl::Now();
  int position = start_pos;
  int32_t last_token = 0;
  absl::Span<const int32_t> pass = tokens;  // the prefill, then one generated token a pass
  for (int step = 0; step < num_tokens; ++step) {
    if (absl::Status s = model.Forward(pass, position, cache, &logits); !s.ok()) return s;
    position += static_cast<int>(pass.size());
    absl::StatusOr<int32_t> token = PickToken(logits);
    if (!token.ok()) return token.status();
    if (step == 0) result.first_token = absl::Now() - start;
    last_token = *token;
    result.tokens.push_back(last_token);
    pass = absl::MakeConstSpan(&last_token, 1);
  }
  result.elapsed = absl::Now() - start;
  return result;
}

}  // namespace

int32_t GreedyToken(absl::Span<const float> logits) {
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    // Strictly greater: ties keep the lower index, and NaN compares false.
    if (best < 0 ? !std::isnan(logits[i]) : logits[i] > logits[best]) {
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

absl::StatusOr<GenerateResult> GenerateRecompute(const ToyTransformer& model,
                                                 absl::Span<const int32_t> prompt, int num_tokens) {
  if (absl::Status s = CheckArguments(model, "prompt", prompt, num_tokens); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<RecomputeAttention>> recompute =
      RecomputeAttention::Create(model.attention_shape());
  if (!recompute.ok()) return recompute.status();

  GenerateResult result;
  result.tokens.reserve(num_tokens);
  std::vector<int32_t> sequence(prompt.begin(), prompt.end());
  sequence.reserve(prompt.size() + num_tokens);
  std::vector<float> logits;
  // Timed from here: every pass, the first (the prompt's prefill) included, as in
  // GenerateCached.
  const absl::Time start = absl::Now();
  for (int step = 0; step < num_tokens; ++step) {
    if (absl::Status s = model.Forward(sequence, 0, recompute->get(), &logits); !s.ok()) {
      return s;
    }
    absl::StatusOr<int32_t> token = PickToken(logits);
    if (!token.ok()) return token.status();
    if (step == 0) result.first_token = absl::Now() - start;
    result.tokens.push_back(*token);
    sequence.push_back(*token);
  }
  result.elapsed = absl::Now() - start;
  return result;
}

absl::StatusOr<GenerateResult> GenerateCached(const ToyTransformer& model,
                                              absl::Span<const int32_t> prompt, int num_tokens,
                                              LayerAttention* cache) {
  if (absl::Status s = CheckArguments(model, "prompt", prompt, num_tokens); !s.ok()) return s;
  if (cache == nullptr) return absl::InvalidArgumentError("cache: null");
  return GenerateAfter(model, prompt, 0, num_tokens, cache);
}

absl::StatusOr<GenerateResult> ContinueCached(const ToyTransformer& model,
                                              absl::Span<const int32_t> tokens, int start_pos,
                                              int num_tokens, LayerAttention* cache) {
  if (absl::Status s = CheckArguments(model, "tokens", tokens, num_tokens); !s.ok()) return s;
  if (start_pos < 0) {
    return absl::InvalidArgumentError(absl::StrCat("start_pos: must be >= 0, got ", start_pos));
  }
  if (cache == nullptr) return absl::InvalidArgumentError("cache: null");
  return GenerateAfter(model, tokens, start_pos, num_tokens, cache);
}

}  // namespace kvtier
