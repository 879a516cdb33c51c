// Workload: what each conversation of a run says, drawn from the configuration's seed: its
// tenant (TenantMix), its prefix group within the tenant (whose system prompt it starts with),
// its turns (own prompt tokens, reply length, think time before the turn), whether its outputs
// are verified; and, in open loop, when conversations arrive. In a trace replay conversation i
// is the trace's request i: one turn, its prompt built from its hash ids, arriving at its
// timestamp / --speedup. A conversation's plan depends only on the seed and its index, so the
// same flags give the same conversations on every run.
//
// Immutable after construction; thread-safe.
#ifndef KVTIER_CLIENT_LOAD_WORKLOAD_H_
#define KVTIER_CLIENT_LOAD_WORKLOAD_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/time/time.h"
#include "client/load/load_config.h"
#include "client/load/tenant_mix.h"

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
  int tenant = 0;
  int prefix_group = 0;  // within its tenant
  bool verify = false;
  uint64_t seed = 0;  // of its token ids and q/k/v
  std::vector<TurnPlan> turns;
  // The first turn starts with this many tokens shared with other conversations (the system
  // prompt; in a replay the whole prompt, built from hash_ids).
  int shared_tokens = 0;
  std::vector<int64_t> hash_ids;  // a replay's request's; empty otherwise
};

class Workload {
 public:
  explicit Workload(const LoadConfig& config);

  ConversationPlan Plan(int64_t index) const;
  // The plan's shared_tokens token ids: its tenant's prefix group's system prompt, or its
  // request's prompt (RequestTokens), so equal hash ids give equal tokens.
  std::vector<int32_t> SharedPrompt(const ConversationPlan& plan) const;

  // Open loop: arrival offsets from the run's start, in order, up to warmup + duration; gaps
  // are gamma-distributed with mean 1 / session_rate and coefficient of variation burstiness
  // (exponential, a Poisson process, at burstiness 1). A replay: the requests' timestamps /
  // speedup, the first max_requests of them, up to warmup + duration unless that is 0.
  std::vector<absl::Duration> Arrivals() const;

  // The stream StepTensors draws the k and v of the token at `position` of `plan` from: for
  // the shared tokens, its tenant's prefix group's (a replay: its block's hash id's), so the
  // sessions sharing them agree on them; then its own.
  uint64_t KvStream(const ConversationPlan& plan, int position) const;

  // Token ids from `rng`, uniform in [0, kWorkloadVocab).
  static std::vector<int32_t> Tokens(std::mt19937_64& rng, int count);

 private:
  const LoadConfig config_;
  const TenantMix tenants_;
  const int block_tokens_;  // a replay's tokens per hash id
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_WORKLOAD_H_
