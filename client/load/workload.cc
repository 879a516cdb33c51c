#include "client/load/workload.h"

namespace kvtier {
namespace {

// Distinct streams of the one seed.
constexpr uint64_t kSystemPromptStream = 0x5157e3b0a7c1d2e9ull;
constexpr uint64_t kConversationStream = 0xc0a7e45a710e0b1full;
constexpr uint64_t kArrivalStream = 0xa881fa15e2d3c4b5ull;
constexpr uint64_t kSystemKvStream = 0x6b7e1d2c3f4a5b69ull;

}  // namespace

Workload::Workload(const LoadConfig& config) : config_(config) {
  for (int group = 0; group < config.prefix_groups; ++group) {
    std::mt19937_64 rng(config.seed ^ kSystemPromptStream ^ static_cast<uint64_t>(group));
    system_prompts_.push_back(Tokens(rng, config.system_tokens));
  }
}

std::vector<int32_t> Workload::Tokens(std::mt19937_64& rng, int count) {
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = static_cast<int32_t>(rng() % kWorkloadVocab);
  return tokens;
}

ConversationPlan Workload::Plan(int64_t index) const {
  std::mt19937_64 rng(config_.seed ^ kConversationStream ^
                      (static_cast<uint64_t>(index) * 0x9e3779b97f4a7c15ull));
  ConversationPlan plan;
  plan.index = index;
  plan.prefix_group = static_cast<int>(index % config_.prefix_groups);
  plan.verify = std::uniform_real_distribution<double>()(rng) < config_.verify_fraction;
  plan.seed = rng();
  for (int turn = 0; turn < config_.turns; ++turn) {
    TurnPlan& t = plan.turns.emplace_back();
    if (turn > 0) t.think_before = absl::Milliseconds(config_.think_ms.Sample(rng));
    // The first turn may be the system prompt alone; later turns say something.
    t.prompt_tokens =
        config_.prompt_tokens.SampleCount(rng, turn == 0 && config_.system_tokens > 0 ? 0 : 1);
    t.decode_tokens = config_.decode_tokens.SampleCount(rng, 1);
  }
  return plan;
}

uint64_t Workload::KvStream(const ConversationPlan& plan, int position) const {
  if (position < config_.system_tokens) {
    return config_.seed ^ kSystemKvStream ^ (static_cast<uint64_t>(plan.prefix_group) << 32);
  }
  return plan.seed;
}

std::vector<absl::Duration> Workload::Arrivals() const {
  std::mt19937_64 rng(config_.seed ^ kArrivalStream);
  const double shape = 1 / (config_.burstiness * config_.burstiness);
  std::gamma_distribution<double> gap(shape, 1 / (config_.session_rate * shape));
  std::vector<absl::Duration> arrivals;
  const absl::Duration end = config_.warmup + config_.duration;
  for (absl::Duration at = absl::ZeroDuration();;) {
    at += absl::Seconds(gap(rng));
    if (at >= end) break;
    arrivals.push_back(at);
  }
  return arrivals;
}

}  // namespace kvtier
