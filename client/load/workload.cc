#include "client/load/workload.h"

#include <algorithm>
#include <cmath>

namespace kvtier {
namespace {

// Distinct streams of the one seed.
constexpr uint64_t kSystemPromptStream = 0x5157e3b0a7c1d2e9ull;
constexpr uint64_t kConversationStream = 0xc0a7e45a710e0b1full;
constexpr uint64_t kArrivalStream = 0xa881fa15e2d3c4b5ull;
constexpr uint64_t kSystemKvStream = 0x6b7e1d2c3f4a5b69ull;
constexpr uint64_t kTenantStream = 0x7e4a9c1b3d5f8e27ull;
constexpr uint64_t kHashIdKvStream = 0x3c9d2e7f1a4b6c85ull;

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

// A prefix group of a tenant, as one number for a stream.
uint64_t GroupKey(const ConversationPlan& plan) {
  return (static_cast<uint64_t>(plan.tenant) << 32) ^ static_cast<uint64_t>(plan.prefix_group);
}

}  // namespace

Workload::Workload(const LoadConfig& config)
    : config_(config),
      tenants_(config.tenants, config.tenant_skew),
      block_tokens_(ScaledBlockTokens(config.trace_length_scale)) {}

std::vector<int32_t> Workload::Tokens(std::mt19937_64& rng, int count) {
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = static_cast<int32_t>(rng() % kWorkloadVocab);
  return tokens;
}

ConversationPlan Workload::Plan(int64_t index) const {
  const uint64_t spread = static_cast<uint64_t>(index) * kGolden;
  std::mt19937_64 rng(config_.seed ^ kConversationStream ^ spread);
  std::mt19937_64 tenant_rng(config_.seed ^ kTenantStream ^ spread);
  ConversationPlan plan;
  plan.index = index;
  plan.tenant = tenants_.Sample(tenant_rng);
  plan.prefix_group = static_cast<int>(index % config_.prefix_groups);
  plan.verify = std::uniform_real_distribution<double>()(rng) < config_.verify_fraction;
  plan.seed = rng();
  if (!config_.trace.empty()) {
    const TraceRequest& request = config_.trace[index];
    plan.hash_ids = request.hash_ids;
    plan.shared_tokens = static_cast<int>(RequestTokens(request, block_tokens_).size());
    plan.turns.emplace_back().decode_tokens = std::max(
        1, static_cast<int>(std::lround(request.output_length * config_.trace_length_scale)));
    return plan;
  }
  plan.shared_tokens = config_.system_tokens;
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

std::vector<int32_t> Workload::SharedPrompt(const ConversationPlan& plan) const {
  if (!config_.trace.empty()) return RequestTokens(config_.trace[plan.index], block_tokens_);
  std::mt19937_64 rng(config_.seed ^ kSystemPromptStream ^ GroupKey(plan));
  return Tokens(rng, config_.system_tokens);
}

uint64_t Workload::KvStream(const ConversationPlan& plan, int position) const {
  if (position >= plan.shared_tokens) return plan.seed;
  if (!plan.hash_ids.empty()) {
    // NOTE: not seeded by --seed, like the tokens: the tier may hold these blocks from another
    // run, and equal tokens must have equal k/v.
    return kHashIdKvStream ^
           (static_cast<uint64_t>(plan.hash_ids[position / block_tokens_]) * kGolden);
  }
  return config_.seed ^ kSystemKvStream ^ (GroupKey(plan) * kGolden);
}

std::vector<absl::Duration> Workload::Arrivals() const {
  const absl::Duration end = config_.duration > absl::ZeroDuration() || config_.trace.empty()
                                 ? config_.warmup + config_.duration
                                 : absl::InfiniteDuration();
  std::vector<absl::Duration> arrivals;
  if (!config_.trace.empty()) {
    for (const TraceRequest& request : config_.trace) {
      const absl::Duration at = absl::Milliseconds(request.timestamp_ms) / config_.speedup;
      const bool enough =
          config_.max_requests > 0 && static_cast<int64_t>(arrivals.size()) >= config_.max_requests;
      if (at >= end || enough) break;
      arrivals.push_back(at);
    }
    return arrivals;
  }
  std::mt19937_64 rng(config_.seed ^ kArrivalStream);
  const double shape = 1 / (config_.burstiness * config_.burstiness);
  std::gamma_distribution<double> gap(shape, 1 / (config_.session_rate * shape));
  for (absl::Duration at = absl::ZeroDuration();;) {
    at += absl::Seconds(gap(rng));
    if (at >= end) break;
    arrivals.push_back(at);
  }
  return arrivals;
}

}  // namespace kvtier
