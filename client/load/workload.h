// Workload: what each conversation of a run says, drawn from the configuration's seed: its
// prefix group (whose system prompt it starts with), its turns (own prompt tokens, reply
// length, think time before the turn), whether its outputs are verified; and, in open loop,
// when conversations arrive. A conversation's plan depends only on the seed and its index, so
// the same flags give the same conversations on every run.
//
// Immutable after construction; thread-safe.
#ifndef KVTIER_CLIENT_LOAD_WORKLOAD_H_
#define KVTIER_CLIENT_LOAD_WORKLOAD_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/time/time.h"
#include "client/load/load_config.h"

namespace kvtier {

// Token ids the workload draws are in [0, kWorkloadVocab).
inline constexpr int32_t kWorkloadVocab = 1 << 17;

struct TurnPlan {
  absl::Duration think_before;  // zero for the first turn
  int prompt_tokens = 0;        // the turn's own tokens (after the system prompt, in turn 1)
  int decode_tokens = 0;        // >= 1
};

struct ConversationPlan {
  int64_t index = 0;
  int prefix_group = 0;
  bool verify = false;
  uint64_t seed = 0;  // of its token ids and q/k/v
  std::vector<TurnPlan> turns;
};

class Workload {
 public:
  explicit Workload(const LoadConfig& config);

  ConversationPlan Plan(int64_t index) const;
  // The system_tokens token ids every conversation of `group` starts with.
  const std::vector<int32_t>& SystemPrompt(int group) const { return system_prompts_[group]; }

  // Open loop: arrival offsets from the run's start, in order, up to warmup + duration; gaps
  // are gamma-distributed with mean 1 / session_rate and coefficient of variation burstiness
  // (exponential, a Poisson process, at burstiness 1).
  std::vector<absl::Duration> Arrivals() const;

  // The stream StepTensors draws the k and v of the token at `position` of `plan` from: its
  // prefix group's for the system prompt, so the group's sessions agree on it, then its own.
  uint64_t KvStream(const ConversationPlan& plan, int position) const;

  // Token ids from `rng`, uniform in [0, kWorkloadVocab).
  static std::vector<int32_t> Tokens(std::mt19937_64& rng, int count);

 private:
  const LoadConfig config_;
  std::vector<std::vector<int32_t>> system_prompts_;  // [prefix_groups]
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_WORKLOAD_H_
