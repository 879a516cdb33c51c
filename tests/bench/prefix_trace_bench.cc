// kvtier_bench_prefix_trace: how much of a production trace's prompts the coordinator finds
// cached, read against a plain LRU simulation and the infinite-cache bound.
//
// Replays a Mooncake trace (--trace; ../shared/traces/README.md says what it holds) through a
// Coordinator in process, whose one fake shard never stores K/V, once per --capacity_tokens
// and --policies. Each request is one session of tenant "trace": an Extend with the prompt as
// next_tokens (cached_tokens: how much of it was cached), an Extend committing the rest as if
// the front-end had computed it, and CloseSession, which leaves its full blocks cached. A
// request larger than the pool is refused (RESOURCE_EXHAUSTED): 0 hits, counted.
// Beside each row: the LRU reference of prefix_cache_reference.h at the same capacity, and the
// bound (the same simulation, unbounded). Then the rate of matching Extends over a cached
// --extend_prompt_tokens prompt, timed as whole OpenSession + Extend + CloseSession loops on
// one thread.
// A block size the coordinator refuses (it allows 1..512 tokens) leaves only the reference
// and the bound. The last line is one JSON object.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "client/load/mooncake_trace.h"
#include "kvtier/v1/registry.pb.h"
#include "kvtier/v1/session.pb.h"
#include "proto/wire/command_line.h"
#include "proto/wire/model_spec.h"
#include "service/coordinator.h"
#include "tests/bench/prefix_cache_reference.h"

ABSL_FLAG(std::string, trace, "../shared/traces/mooncake_synthetic_trace.jsonl",
          "Mooncake trace (JSON lines) to replay, relative to the working directory");
ABSL_FLAG(std::vector<std::string>, capacity_tokens,
          std::vector<std::string>({"10000000", "3000000", "1000000", "0"}),
          "pool sizes to replay with, in tokens; 0: unbounded (a block for every token of the "
          "trace)");
ABSL_FLAG(int, block_size, 16, "tokens per block");
ABSL_FLAG(std::vector<std::string>, policies,
          std::vector<std::string>({"lru", "lfu-aging", "slru"}),
          "coordinator eviction policies to replay with: lru, lfu-aging, slru");
ABSL_FLAG(int, requests, 0, "replay the trace's first N requests; 0: all");
ABSL_FLAG(int, extend_prompt_tokens, 16384, "prompt length of the timed matching Extends");
ABSL_FLAG(double, min_seconds, 2.0, "time the matching Extends for at least this long");

namespace kvtier::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kTenant[] = "trace";
constexpr char kModelName[] = "trace-bench";

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct BenchConfig {
  std::string trace_path;
  std::vector<TraceRequest> requests;
  int block_size = 0;
  std::vector<int64_t> capacities;  // tokens; 0: unbounded
  std::vector<std::string> policies;
  int extend_prompt_tokens = 0;
  double min_seconds = 0;
};

absl::StatusOr<BenchConfig> ConfigFromFlags() {
  BenchConfig config;
  config.trace_path = absl::GetFlag(FLAGS_trace);
  config.block_size = absl::GetFlag(FLAGS_block_size);
  config.extend_prompt_tokens = absl::GetFlag(FLAGS_extend_prompt_tokens);
  config.min_seconds = absl::GetFlag(FLAGS_min_seconds);
  config.policies = absl::GetFlag(FLAGS_policies);
  const int requests = absl::GetFlag(FLAGS_requests);
  if (config.block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--block_size: expected >= 1, got ", config.block_size));
  }
  for (const std::string& text : absl::GetFlag(FLAGS_capacity_tokens)) {
    int64_t tokens = 0;
    if (!absl::SimpleAtoi(text, &tokens) || tokens < 0 ||
        (tokens > 0 && tokens < config.block_size) ||
        tokens / config.block_size > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--capacity_tokens: expected 0 or block_size (", config.block_size,
                       ") .. 2^31-1 blocks' worth of tokens, got \"", text, "\""));
    }
    config.capacities.push_back(tokens);
  }
  for (const std::string& policy : config.policies) {
    if (absl::Status status = NewEvictionPolicy(policy, 1).status(); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--policies: ", status.message()));
    }
  }
  if (config.capacities.empty() || config.policies.empty()) {
    return absl::InvalidArgumentError("--capacity_tokens and --policies: expected at least one");
  }
  if (requests < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--requests: expected >= 0, got ", requests));
  }
  if (config.extend_prompt_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--extend_prompt_tokens: expected >= 1, got ", config.extend_prompt_tokens));
  }
  if (!(config.min_seconds >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--min_seconds: expected >= 0, got ", config.min_seconds));
  }
  absl::StatusOr<std::vector<TraceRequest>> trace = ReadMooncakeTrace(config.trace_path);
  if (!trace.ok()) {
    return absl::Status(trace.status().code(), absl::StrCat("--trace: ", trace.status().message()));
  }
  config.requests = *std::move(trace);
  if (requests > 0 && requests < static_cast<int>(config.requests.size())) {
    config.requests.resize(requests);
  }
  return config;
}

v1::ModelSpec BenchModel(int block_size, int64_t num_blocks) {
  v1::ModelSpec model;
  model.mutable_id()->set_name(kModelName);
  model.set_num_layers(1);
  model.set_num_kv_heads(1);
  model.set_num_q_heads(1);
  model.set_head_dim(8);
  model.set_dtype(v1::DTYPE_FP16);
  model.set_block_size(block_size);
  model.set_num_blocks(static_cast<int32_t>(num_blocks));
  model.set_num_shards(1);
  return model;
}

// NOTE: CoordinatorOptions::eviction_policy comes with the coordinator's prefix matching.
CoordinatorOptions EvictingBy(const std::string& policy) {
  CoordinatorOptions options;
  options.eviction_policy = policy;
  return options;
}

// A coordinator serving `model` through one fake shard that says its range is ready.
absl::StatusOr<std::unique_ptr<Coordinator>> StartCoordinator(const CoordinatorOptions& options,
                                                              const v1::ModelSpec& model) {
  auto coordinator = std::make_unique<Coordinator>(options);
  if (absl::Status status = coordinator->RegisterModel(model).status(); !status.ok()) {
    return status;
  }
  v1::RegisterShardRequest join;
  join.set_address("fake-shard:1");
  join.set_capacity_bytes(std::numeric_limits<int64_t>::max());
  absl::StatusOr<v1::ShardAssignment> assignment = coordinator->RegisterShard(join);
  if (!assignment.ok()) return assignment.status();
  v1::HeartbeatRequest ready;
  ready.set_shard_id(assignment->shard_id());
  for (const v1::HostedRange& range : assignment->ranges()) {
    ready.add_ready_incarnations(range.incarnation());
  }
  if (absl::Status status = coordinator->Heartbeat(ready).status(); !status.ok()) return status;
  return coordinator;
}

// Commits `tokens` to `session` at `context_len` and looks up `next_tokens`, reserving nothing
// more.
absl::StatusOr<v1::ExtendResponse> Extend(Coordinator& coordinator,
                                          const v1::OpenSessionResponse& session,
                                          int32_t context_len, absl::Span<const int32_t> tokens,
                                          absl::Span<const int32_t> next_tokens) {
  v1::ExtendRequest request;
  request.set_session_id(session.session().session_id());
  request.set_tenant(kTenant);
  request.set_writer(session.grant().writer());
  request.set_expected_context_len(context_len);
  request.mutable_tokens()->Add(tokens.begin(), tokens.end());
  request.mutable_next_tokens()->Add(next_tokens.begin(), next_tokens.end());
  return coordinator.Extend(request);
}

// Looks up `prompt` on a fresh session; cached_tokens is checked to count part of it.
absl::StatusOr<v1::ExtendResponse> Match(Coordinator& coordinator,
                                         const v1::OpenSessionResponse& session,
                                         absl::Span<const int32_t> prompt) {
  absl::StatusOr<v1::ExtendResponse> matched = Extend(coordinator, session, 0, {}, prompt);
  if (matched.ok() && (matched->cached_tokens() < 0 ||
                       matched->cached_tokens() > static_cast<int64_t>(prompt.size()))) {
    return absl::InternalError(
        absl::StrCat("ExtendResponse.cached_tokens: ", matched->cached_tokens(), " of a ",
                     prompt.size(), "-token prompt"));
  }
  return matched;
}

// Opens a session, runs `use` on it, and closes it whatever `use` returned; `use`'s result.
template <typename Use>
absl::StatusOr<int32_t> WithSession(Coordinator& coordinator, Use use) {
  v1::OpenSessionRequest open;
  open.mutable_model()->set_name(kModelName);
  open.set_tenant(kTenant);
  absl::StatusOr<v1::OpenSessionResponse> session = coordinator.OpenSession(open);
  if (!session.ok()) return session.status();
  absl::StatusOr<int32_t> result = use(*session);
  v1::CloseSessionRequest close;
  close.set_session_id(session->session().session_id());
  close.set_tenant(kTenant);
  absl::Status closed = coordinator.CloseSession(close);
  if (result.ok() && !closed.ok()) return closed;
  return result;
}

// One trace request as a front-end serves it: matches the prompt, commits the uncached rest as
// if computed, closes. Its cached tokens.
absl::StatusOr<int32_t> ServeRequest(Coordinator& coordinator, absl::Span<const int32_t> prompt) {
  return WithSession(
      coordinator, [&](const v1::OpenSessionResponse& session) -> absl::StatusOr<int32_t> {
        absl::StatusOr<v1::ExtendResponse> matched = Match(coordinator, session, prompt);
        if (!matched.ok()) return matched.status();
        absl::Status committed = Extend(coordinator, session, matched->context_len(),
                                        prompt.subspan(matched->cached_tokens()), {})
                                     .status();
        if (!committed.ok()) return committed;
        return matched->cached_tokens();
      });
}

struct ReplayResult {
  int64_t cached_tokens = 0;
  int64_t refused = 0;  // requests larger than the pool
  double seconds = 0;
};

// The trace through a coordinator with `num_blocks` blocks that evicts by `policy`.
absl::StatusOr<ReplayResult> ReplayThroughCoordinator(const BenchConfig& config, int64_t num_blocks,
                                                      const std::string& policy) {
  absl::StatusOr<std::unique_ptr<Coordinator>> coordinator =
      StartCoordinator(EvictingBy(policy), BenchModel(config.block_size, num_blocks));
  if (!coordinator.ok()) return coordinator.status();
  ReplayResult result;
  const Clock::time_point start = Clock::now();
  for (size_t i = 0; i < config.requests.size(); ++i) {
    absl::StatusOr<int32_t> cached = ServeRequest(**coordinator, RequestTokens(config.requests[i]));
    if (cached.ok()) {
      result.cached_tokens += *cached;
    } else if (absl::IsResourceExhausted(cached.status())) {
      ++result.refused;
    } else {
      return absl::Status(
          cached.status().code(),
          absl::StrCat("request ", i + 1, " of the trace: ", cached.status().message()));
    }
  }
  result.seconds = Seconds(start);
  return result;
}

struct ExtendRate {
  double per_second = 0;      // whole OpenSession + Extend + CloseSession loops
  int32_t cached_tokens = 0;  // of the prompt, as each Extend found it
};

absl::StatusOr<ExtendRate> MeasureMatchingExtends(const BenchConfig& config) {
  TraceRequest synthetic;
  synthetic.input_length = config.extend_prompt_tokens;
  for (int64_t id = 0; id * kTraceBlockTokens < synthetic.input_length; ++id) {
    synthetic.hash_ids.push_back(id);
  }
  const std::vector<int32_t> prompt = RequestTokens(synthetic);
  // Room for the cached prompt and one more session's worth.
  const int64_t prompt_blocks =
      (int64_t{config.extend_prompt_tokens} + config.block_size - 1) / config.block_size;
  absl::StatusOr<std::unique_ptr<Coordinator>> coordinator =
      StartCoordinator(CoordinatorOptions(), BenchModel(config.block_size, 2 * prompt_blocks));
  if (!coordinator.ok()) return coordinator.status();
  if (absl::Status status = ServeRequest(**coordinator, prompt).status(); !status.ok()) {
    return status;
  }
  auto match_once = [&]() {
    return WithSession(
        **coordinator, [&](const v1::OpenSessionResponse& session) -> absl::StatusOr<int32_t> {
          absl::StatusOr<v1::ExtendResponse> matched = Match(**coordinator, session, prompt);
          if (!matched.ok()) return matched.status();
          return matched->cached_tokens();
        });
  };
  ExtendRate rate;
  int64_t loops = 0;
  const Clock::time_point start = Clock::now();
  double elapsed = 0;
  do {
    absl::StatusOr<int32_t> cached = match_once();
    if (!cached.ok()) return cached.status();
    rate.cached_tokens = *cached;
    ++loops;
    elapsed = Seconds(start);
  } while (elapsed < config.min_seconds);
  rate.per_second = loops / elapsed;
  return rate;
}

std::string CpuName() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (!absl::StartsWith(line, "model name")) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      return std::string(absl::StripAsciiWhitespace(absl::string_view(line).substr(colon + 1)));
    }
  }
  return "unknown (no \"model name\" in /proc/cpuinfo)";
}

std::string JsonString(absl::string_view text) {
  std::string json = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&json, "\\", absl::string_view(&c, 1));
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&json, "\\u%04x", c);
    } else {
      json.push_back(c);
    }
  }
  return json + "\"";
}

std::string CapacityName(int64_t capacity_tokens) {
  return capacity_tokens == 0 ? "unbounded" : absl::StrCat(capacity_tokens);
}

std::string Percent(double fraction) { return absl::StrFormat("%.2f%%", 100 * fraction); }

// What the rows share: the trace's totals and the infinite-cache bound.
struct TraceTotals {
  int64_t input_tokens = 0;
  int64_t unbounded_blocks = 0;  // a block for every token of every request
  int64_t bound_tokens = 0;

  double Fraction(int64_t tokens) const { return static_cast<double>(tokens) / input_tokens; }
};

struct Row {
  int64_t capacity_tokens = 0;  // 0: unbounded
  std::string policy;
  int64_t reference_tokens = 0;
  std::optional<ReplayResult> coordinator;  // empty where the coordinator refuses the model
};

// The rows, one per capacity and policy, with the reference filled in.
absl::StatusOr<std::vector<Row>> ReferenceRows(const BenchConfig& config, TraceTotals* totals) {
  std::vector<PromptBlocks> prompts;
  for (const TraceRequest& request : config.requests) {
    totals->input_tokens += request.input_length;
    totals->unbounded_blocks +=
        (int64_t{request.input_length} + config.block_size - 1) / config.block_size;
    prompts.push_back(ChainBlocks(RequestTokens(request), config.block_size));
  }
  if (totals->unbounded_blocks > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("--block_size: an unbounded pool needs ",
                                                   totals->unbounded_blocks, " blocks of ",
                                                   config.block_size, " tokens, more than 2^31-1"));
  }
  totals->bound_tokens = LruCachedTokens(prompts, config.block_size, 0);
  std::vector<Row> rows;
  for (int64_t capacity : config.capacities) {
    const int64_t reference =
        capacity == 0 ? totals->bound_tokens
                      : LruCachedTokens(prompts, config.block_size, capacity / config.block_size);
    for (const std::string& policy : config.policies) {
      rows.push_back({.capacity_tokens = capacity,
                      .policy = policy,
                      .reference_tokens = reference,
                      .coordinator = std::nullopt});
    }
  }
  return rows;
}

absl::Status ReplayRows(const BenchConfig& config, const TraceTotals& totals,
                        std::vector<Row>& rows) {
  for (Row& row : rows) {
    const int64_t num_blocks = row.capacity_tokens == 0 ? totals.unbounded_blocks
                                                        : row.capacity_tokens / config.block_size;
    absl::StatusOr<ReplayResult> replay = ReplayThroughCoordinator(config, num_blocks, row.policy);
    if (!replay.ok()) {
      return absl::Status(replay.status().code(),
                          absl::StrCat("capacity ", CapacityName(row.capacity_tokens), ", ",
                                       row.policy, ": ", replay.status().message()));
    }
    row.coordinator = *replay;
    absl::FPrintF(stderr,
                  "prefix_trace: capacity_tokens=%s, %s: hit rate %s (reference %s), %d refused, "
                  "%.1f s\n",
                  CapacityName(row.capacity_tokens), row.policy,
                  Percent(totals.Fraction(replay->cached_tokens)),
                  Percent(totals.Fraction(row.reference_tokens)), replay->refused, replay->seconds);
  }
  return absl::OkStatus();
}

// The table, the Extend rate (or why there is none) and the JSON line.
void PrintReport(const BenchConfig& config, const TraceTotals& totals, const std::vector<Row>& rows,
                 const std::optional<ExtendRate>& extend_rate, const absl::Status& model_check) {
  absl::PrintF("%15s %-10s %9s %13s %9s %8s %8s\n", "capacity_tokens", "policy", "hit_rate",
               "lru_reference", "bound", "refused", "seconds");
  const double bound = totals.Fraction(totals.bound_tokens);
  std::vector<std::string> json_rows;
  for (const Row& row : rows) {
    const double reference = totals.Fraction(row.reference_tokens);
    std::optional<double> hit_rate;
    if (row.coordinator) hit_rate = totals.Fraction(row.coordinator->cached_tokens);
    absl::PrintF("%15s %-10s %9s %13s %9s %8s %8s\n", CapacityName(row.capacity_tokens), row.policy,
                 hit_rate ? Percent(*hit_rate) : "-", Percent(reference), Percent(bound),
                 row.coordinator ? absl::StrCat(row.coordinator->refused) : "-",
                 row.coordinator ? absl::StrFormat("%.1f", row.coordinator->seconds) : "-");
    json_rows.push_back(absl::StrFormat(
        "{\"capacity_tokens\":%d,\"policy\":%s,\"hit_rate\":%s,\"lru_reference\":%.4f}",
        row.capacity_tokens, JsonString(row.policy),
        hit_rate ? absl::StrFormat("%.4f", *hit_rate) : "null", reference));
  }
  if (extend_rate) {
    absl::PrintF(
        "matching Extends, prompt of %d tokens (%d of them cached): %.1f/s, counting whole "
        "OpenSession + Extend + CloseSession loops on one thread\n",
        config.extend_prompt_tokens, extend_rate->cached_tokens, extend_rate->per_second);
  } else {
    absl::PrintF("no coordinator rows: the coordinator refuses the model: %s\n",
                 model_check.message());
  }
  absl::PrintF(
      "{\"bench\":\"prefix_trace\",\"trace\":%s,\"requests\":%d,\"block_size\":%d,"
      "\"bound\":%.4f,\"rows\":[%s],\"extend_per_s\":%s}\n",
      JsonString(config.trace_path), config.requests.size(), config.block_size, bound,
      absl::StrJoin(json_rows, ","),
      extend_rate ? absl::StrFormat("%.1f", extend_rate->per_second) : "null");
}

int Fail(const absl::Status& status) {
  absl::FPrintF(stderr, "kvtier_bench_prefix_trace: %s\n", status.ToString());
  return 1;
}

int Main() {
  absl::StatusOr<BenchConfig> config = ConfigFromFlags();
  if (!config.ok()) return Fail(config.status());
  absl::PrintF("prefix_trace: %s, %d requests, blocks of %d tokens\ncpu: %s\n", config->trace_path,
               config->requests.size(), config->block_size, CpuName());

  const Clock::time_point start = Clock::now();
  TraceTotals totals;
  absl::StatusOr<std::vector<Row>> rows = ReferenceRows(*config, &totals);
  if (!rows.ok()) return Fail(rows.status());
  absl::FPrintF(stderr, "prefix_trace: LRU reference and bound over %d input tokens: %.1f s\n",
                totals.input_tokens, Seconds(start));

  // The coordinator checks models as ValidateModelSpec does.
  const absl::Status model_check = ValidateModelSpec(BenchModel(config->block_size, 1));
  std::optional<ExtendRate> extend_rate;
  if (model_check.ok()) {
    if (absl::Status status = ReplayRows(*config, totals, *rows); !status.ok()) {
      return Fail(status);
    }
    absl::FPrintF(stderr, "prefix_trace: timing matching Extends for %.1f s\n",
                  config->min_seconds);
    absl::StatusOr<ExtendRate> rate = MeasureMatchingExtends(*config);
    if (!rate.ok()) return Fail(rate.status());
    extend_rate = *rate;
  } else {
    absl::FPrintF(stderr,
                  "prefix_trace: no coordinator rows: the coordinator refuses the model: %s\n",
                  model_check.message());
  }
  PrintReport(*config, totals, *rows, extend_rate, model_check);
  return 0;
}

}  // namespace
}  // namespace kvtier::bench

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(
      argc, argv,
      "Replays a Mooncake trace through the coordinator and reports prefix-cache hit rates "
      "against an LRU simulation and the infinite-cache bound.\n"
      "Usage: kvtier_bench_prefix_trace [--trace=PATH] [--capacity_tokens=C,...] "
      "[--block_size=B] [--policies=lru,lfu-aging,slru]");
  return kvtier::bench::Main();
}
