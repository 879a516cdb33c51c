// kvtier-load's trace replay, tenants and goodput against a LocalTier, as a user runs them: the
// committed head of the Mooncake trace replayed fast and scaled down, its JSON counts adding up
// and its shared prefixes hit, then replayed again with every output checked against what the
// first replay left cached; sessions spread over tenants with per-tenant rows that add up
// to the sessions; goodput 1 under targets every session meets and 0 under ones none can.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/load/load_tool.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

constexpr int kReplayed = 60;

// Replays the first `requests` requests of the trace head at 1/32 of its lengths (each hash
// id's block becomes 16 tokens, the test model's block size), writing the report to `json`.
ChildRun ReplayHead(const std::string& coordinator_flag, int requests, const std::string& json,
                    const std::vector<std::string>& more_flags) {
  std::vector<std::string> flags = {coordinator_flag,
                                    "--trace=" KVTIER_TRACE_HEAD,
                                    "--speedup=50",
                                    "--trace_length_scale=0.03125",
                                    "--max_requests=" + std::to_string(requests),
                                    "--max_sessions=8",
                                    "--json=" + json};
  flags.insert(flags.end(), more_flags.begin(), more_flags.end());
  return RunLoadTool(flags);
}

TEST_F(LoadToolTest, ReplaysTheTraceHead) {
  const std::string json = TempPath("trace.json");
  const ChildRun run = ReplayHead(coordinator_flag(), kReplayed, json, {});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.errors;
  EXPECT_THAT(run.output, HasSubstr("trace replay of"));
  EXPECT_THAT(run.output, HasSubstr("ttft (from arrival)"));

  const google::protobuf::Struct report = ReadJson(json);
  EXPECT_EQ(Field(report, "config.mode").string_value(), "open");
  EXPECT_EQ(Number(report, "config.trace_requests"), 300);
  EXPECT_EQ(Number(report, "summary.sessions_started"), kReplayed);
  EXPECT_EQ(Number(report, "summary.sessions_completed"), kReplayed);
  EXPECT_EQ(Number(report, "summary.turns"), kReplayed);  // a one-turn session each
  const auto& sessions = Field(report, "sessions").list_value().values();
  ASSERT_EQ(sessions.size(), static_cast<size_t>(kReplayed));
  double decode_tokens = 0, prompt = 0, cached = 0;
  for (const auto& value : sessions) {
    const google::protobuf::Struct& row = value.struct_value();
    EXPECT_EQ(Field(row, "error").string_value(), "");
    decode_tokens += Number(row, "decode_tokens");
    prompt += Number(row, "prompt_tokens");
    cached += Number(row, "cached_tokens");
    EXPECT_EQ(static_cast<int>(Number(row, "cached_tokens")) % 16, 0);
  }
  EXPECT_EQ(Number(report, "summary.decode_tokens"), decode_tokens);
  EXPECT_EQ(Number(report, "summary.prompt_tokens"), prompt);
  EXPECT_EQ(Number(report, "summary.cached_tokens"), cached);
  EXPECT_EQ(Number(report, "summary.latency_ms.ttft.count"), kReplayed);
  // The first 60 requests share 62 blocks with earlier ones (all found, unless an earlier one
  // was still in flight).
  EXPECT_GT(cached, 0) << "the trace's requests share prefixes";
  EXPECT_LE(cached, 62 * 16);

  // Again, with another seed, every output checked: the blocks the first replay left cached
  // hold the same k/v as the verifier redraws for their hash ids.
  const ChildRun again = ReplayHead(coordinator_flag(), 12, json, {"--seed=2", "--verify=1"});
  ASSERT_EQ(again.exit_code, 0) << again.output << again.errors;
  const google::protobuf::Struct checked = ReadJson(json);
  EXPECT_GT(Number(checked, "summary.cached_tokens"), Number(checked, "summary.prompt_tokens") / 2);
  EXPECT_GT(Number(checked, "summary.verify.outputs"), 0);
  EXPECT_EQ(Number(checked, "summary.verify.mismatches"), 0);
}

TEST_F(LoadToolTest, TenantRowsAddUpToTheSessions) {
  const std::string json = TempPath("tenants.json");
  const ChildRun run =
      RunLoadTool({coordinator_flag(), "--sessions=6", "--duration=0", "--tenants=3",
                   "--tenant_skew=1", "--turns=1", "--system_tokens=32", "--prompt_tokens=4",
                   "--decode_tokens=3", "--json=" + json});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.errors;
  EXPECT_THAT(run.output, HasSubstr("kvtier-load-2"));  // a tenant's row
  const google::protobuf::Struct report = ReadJson(json);
  const auto& tenants = Field(report, "tenants").list_value().values();
  ASSERT_EQ(tenants.size(), 3u);
  double sessions = 0, tokens = 0, ttfts = 0;
  for (int k = 0; k < 3; ++k) {
    const google::protobuf::Struct& row = tenants[k].struct_value();
    EXPECT_EQ(Number(row, "tenant"), k);
    EXPECT_EQ(Field(row, "name").string_value(), "kvtier-load-" + std::to_string(k));
    sessions += Number(row, "sessions");
    tokens += Number(row, "token_ms.count");
    ttfts += Number(row, "ttft_ms.count");
    EXPECT_LE(Number(row, "token_ms.p50"), Number(row, "token_ms.p99"));
    EXPECT_LE(Number(row, "token_ms.p99"), Number(row, "token_ms.max"));
  }
  EXPECT_EQ(sessions, Number(report, "summary.sessions_started"));
  EXPECT_EQ(tokens, Number(report, "summary.decode_tokens"));
  EXPECT_EQ(ttfts, Number(report, "summary.turns"));
  for (const auto& value : Field(report, "sessions").list_value().values()) {
    const double tenant = Number(value.struct_value(), "tenant");
    EXPECT_TRUE(tenant >= 0 && tenant < 3) << tenant;
  }
}

class GoodputTest : public LoadToolTest {
 protected:
  // A run's goodput under --slo=`slo`, its table in `output`.
  double Goodput(const std::string& slo, std::string* output);
};

double GoodputTest::Goodput(const std::string& slo, std::string* output) {
  const std::string json = TempPath("slo.json");
  const ChildRun run =
      RunLoadTool({coordinator_flag(), "--sessions=2", "--turns=2", "--prompt_tokens=8",
                   "--decode_tokens=3", "--slo=" + slo, "--json=" + json});
  EXPECT_EQ(run.exit_code, 0) << run.output << run.errors;
  *output = run.output;
  const google::protobuf::Struct report = ReadJson(json);
  EXPECT_EQ(Field(report, "summary.goodput.slo").string_value(), slo);
  EXPECT_EQ(Number(report, "summary.goodput.sessions"), 2);
  return Number(report, "summary.goodput.share");
}

TEST_F(GoodputTest, IsTheShareOfSessionsMeetingEveryTarget) {
  std::string output;
  EXPECT_EQ(Goodput("token_p99=1h,ttft_p99=1h", &output), 1.0);
  EXPECT_THAT(output, HasSubstr("goodput under --slo=token_p99=1h,ttft_p99=1h: 1.000 (2 of 2"));
  EXPECT_EQ(Goodput("token_p99=1h,ttft_p99=1ns", &output), 0.0);
  EXPECT_THAT(output, HasSubstr("(0 of 2 sessions"));
}

}  // namespace
}  // namespace kvtier::test
