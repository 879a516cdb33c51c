// kvtier-load against a LocalTier, as a user runs it: closed loop with a shared system prompt,
// its JSON report holding the documented fields with counts that add up, ordered percentiles
// and prefix hits; --verify passing on a right tier and failing the run on a wrong answer; bad
// flags and an unreachable tier refused with the flag named and a non-zero exit.
#include "tests/client/load/load_tool.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

constexpr const char* kLatencies[] = {"layer_round_trip", "token", "ttft",
                                      "ttft_service",     "turn",  "turn_service"};
constexpr const char* kOrder[] = {"min", "p50", "p90", "p99", "p99_9", "p99_99", "max"};

void ExpectOrdered(const google::protobuf::Struct& report, const std::string& latency) {
  double previous = 0;
  for (const char* name : kOrder) {
    const double value = Number(report, latency + "." + name);
    EXPECT_LE(previous, value) << latency << "." << name;
    previous = value;
  }
}

TEST_F(LoadToolTest, ClosedLoopReportsAddUp) {
  const std::string json = TempPath("closed.json");
  const ChildRun run = RunLoadTool(
      {coordinator_flag(), "--sessions=2", "--turns=3", "--system_tokens=40",
       "--prompt_tokens=uniform:4:12", "--decode_tokens=uniform:2:5", "--think_ms=exp:2",
       "--duration=1500ms", "--slice=250ms", "--progress=200ms", "--json=" + json});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.errors;
  EXPECT_THAT(run.output, HasSubstr("token (all layers)"));
  EXPECT_THAT(run.output, HasSubstr("p99.99"));
  EXPECT_THAT(run.errors, HasSubstr("tokens/s"));  // the progress lines

  const google::protobuf::Struct report = ReadJson(json);
  EXPECT_EQ(Number(report, "schema_version"), 1);
  EXPECT_EQ(Field(report, "config.mode").string_value(), "closed");
  EXPECT_EQ(Number(report, "model.layers"), 4);
  for (const char* latency : kLatencies) {
    ExpectOrdered(report, std::string("summary.latency_ms.") + latency);
  }

  // Sessions: the rows add up to the summary.
  const auto& sessions = Field(report, "sessions").list_value().values();
  ASSERT_GE(sessions.size(), 2u);
  EXPECT_EQ(Number(report, "summary.sessions_started"), sessions.size());
  EXPECT_LE(Number(report, "summary.sessions_completed"), sessions.size());
  double turns = 0, decode_tokens = 0, cached = 0, prompt = 0;
  for (const auto& value : sessions) {
    const google::protobuf::Struct& row = value.struct_value();
    EXPECT_EQ(Field(row, "error").string_value(), "");
    turns += Number(row, "turns");
    decode_tokens += Number(row, "decode_tokens");
    prompt += Number(row, "prompt_tokens");
    const double session_cached = Number(row, "cached_tokens");
    cached += session_cached;
    // Only the system prompt's full blocks are shared: at most 2 of 16 tokens a turn.
    EXPECT_EQ(static_cast<int>(session_cached) % 16, 0);
    EXPECT_LE(session_cached, 32 * Number(row, "turns"));
    EXPECT_EQ(Number(row, "token_ms.count"), Number(row, "decode_tokens"));
    ExpectOrdered(row, "token_ms");
  }
  EXPECT_EQ(Number(report, "summary.turns"), turns);
  EXPECT_EQ(Number(report, "summary.decode_tokens"), decode_tokens);
  EXPECT_EQ(Number(report, "summary.prompt_tokens"), prompt);
  EXPECT_EQ(Number(report, "summary.cached_tokens"), cached);
  EXPECT_GT(cached, 0) << "later conversations find the system prompt cached";
  EXPECT_EQ(Number(report, "summary.latency_ms.token.count"), decode_tokens);
  EXPECT_EQ(Number(report, "summary.latency_ms.ttft.count"), turns);
  EXPECT_EQ(Number(report, "summary.latency_ms.turn.count"), turns);
  EXPECT_EQ(Number(report, "summary.cached_tokens_per_turn.count"), turns);
  // Every turn is one prefill step and one step per decode token, each over every layer.
  EXPECT_EQ(Number(report, "summary.layer_round_trips"), 4 * (turns + decode_tokens));
  EXPECT_EQ(Number(report, "summary.latency_ms.layer_round_trip.count"),
            4 * (turns + decode_tokens));
  EXPECT_TRUE(Field(report, "summary.errors").struct_value().fields().empty());

  // Slices: every token is in one, and they cover the run.
  const auto& slices = Field(report, "slices").list_value().values();
  ASSERT_GE(slices.size(), 5u);
  double slice_tokens = 0, slice_turns = 0;
  for (int i = 0; i < slices.size(); ++i) {
    const google::protobuf::Struct& slice = slices[i].struct_value();
    EXPECT_DOUBLE_EQ(Number(slice, "start_s"), 0.25 * i);
    slice_tokens += Number(slice, "decode_tokens");
    slice_turns += Number(slice, "turns");
    EXPECT_LE(Number(slice, "max_active_sessions"), 2);
  }
  EXPECT_EQ(slice_tokens, decode_tokens);
  EXPECT_EQ(slice_turns, turns);
  EXPECT_GT(Number(report, "summary.client.cpu_us_per_layer_round_trip"), 0);
}

TEST_F(LoadToolTest, VerifyPassesOnTheTierAndCatchesAWrongAnswer) {
  const std::string json = TempPath("verify.json");
  const std::vector<std::string> flags = {
      coordinator_flag(),   "--sessions=2",       "--turns=2",  "--system_tokens=20",
      "--prompt_tokens=12", "--decode_tokens=18", "--verify=1", "--json=" + json};
  const ChildRun right = RunLoadTool(flags);
  ASSERT_EQ(right.exit_code, 0) << right.output << right.errors;
  const google::protobuf::Struct report = ReadJson(json);
  // 2 sessions x 2 turns x (1 prefill + 18 decode steps) x 4 layers.
  EXPECT_EQ(Number(report, "summary.verify.outputs"), 2 * 2 * 19 * 4);
  EXPECT_EQ(Number(report, "summary.verify.mismatches"), 0);

  std::vector<std::string> wrong_flags = flags;
  wrong_flags.push_back("--test_corrupt_output=37");
  const ChildRun wrong = RunLoadTool(wrong_flags);
  EXPECT_EQ(wrong.exit_code, 3) << wrong.output << wrong.errors;
  EXPECT_THAT(wrong.errors, HasSubstr("verify: layer"));
  EXPECT_THAT(wrong.errors, HasSubstr("--verify: 1 of"));
  EXPECT_EQ(Number(ReadJson(json), "summary.verify.mismatches"), 1);
}

TEST_F(LoadToolTest, FailOnErrorsExitsFourOnlyWhenTheTierAnsweredWithAnError) {
  // 40000 tokens of system prompt are more than the model's 2048 blocks of 16 hold.
  std::vector<std::string> refused = {coordinator_flag(), "--sessions=1", "--turns=1",
                                      "--system_tokens=40000", "--decode_tokens=1"};
  const ChildRun counted = RunLoadTool(refused);
  EXPECT_EQ(counted.exit_code, 0) << counted.errors;
  EXPECT_THAT(counted.output, HasSubstr("errors: RESOURCE_EXHAUSTED 1"));

  refused.push_back("--fail_on_errors");
  const ChildRun failed = RunLoadTool(refused);
  EXPECT_EQ(failed.exit_code, 4) << failed.output << failed.errors;
  EXPECT_THAT(failed.errors,
              HasSubstr("--fail_on_errors: the tier answered with errors (1 RESOURCE_EXHAUSTED)"));

  const ChildRun clean = RunLoadTool(
      {coordinator_flag(), "--sessions=1", "--turns=1", "--decode_tokens=2", "--fail_on_errors"});
  EXPECT_EQ(clean.exit_code, 0) << clean.output << clean.errors;
}

TEST_F(LoadToolTest, BadFlagsAreRefusedNamingTheFlag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--sessions=0", "--sessions: expected >= 1, got 0"},
      {"--turns=-1", "--turns: expected >= 1, got -1"},
      {"--prompt_tokens=uniform:9", "--prompt_tokens: expected"},
      {"--think_ms=gauss:3", "--think_ms: expected"},
      {"--mode=sideways", "--mode: expected closed or open, got \"sideways\""},
      {"--mode=open", "--duration: expected > 0 in open loop"},
      {"--verify=1.5", "--verify: expected a fraction in [0, 1], got 1.5"},
      {"--tenants=0", "--tenants: expected >= 1, got 0"},
      {"--tenant_skew=-1", "--tenant_skew: expected >= 0, got -1"},
      {"--slo=token_p99=20ms,ttft_p98=1s", "--slo: \"ttft_p98=1s\": expected token or ttft"},
      {"--trace=/nonexistent.jsonl", "--trace: /nonexistent.jsonl: cannot open"},
      {"--speedup=0", "--speedup: expected > 0, got 0"},
      {"--trace_length_scale=2", "--trace_length_scale: expected a scale in (0, 1], got 2"},
      {"--max_requests=-3", "--max_requests: expected >= 0, got -3"},
      {"--model=nope", "--model: the tier has no model nope"},
  };
  for (const auto& [flag, message] : cases) {
    const ChildRun run = RunLoadTool({coordinator_flag(), flag});
    EXPECT_NE(run.exit_code, 0) << flag;
    EXPECT_EQ(run.exit_code, flag == "--model=nope" ? 1 : 2) << flag << "\n" << run.errors;
    EXPECT_THAT(run.errors, HasSubstr(message)) << flag;
  }
}

TEST(LoadToolBinaryTest, AnUnreachableTierIsAClearError) {
  const ChildRun run = RunLoadTool({"--coordinator=127.0.0.1:1", "--sessions=1"});
  EXPECT_EQ(run.exit_code, 1) << run.errors;
  EXPECT_THAT(run.errors, HasSubstr("cannot reach the tier at --coordinator=127.0.0.1:1"));
  EXPECT_THAT(run.errors, HasSubstr("UNAVAILABLE"));
}

TEST(LoadToolBinaryTest, HelpSaysSecurityHasNotLanded) {
  const ChildRun run = RunLoadTool({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("Credentials per tenant have not landed"));
  for (const char* flag :
       {"--session_rate", "--trace", "--speedup", "--trace_length_scale", "--max_requests",
        "--tenants", "--tenant_skew", "--slo", "--fail_on_errors"}) {
    EXPECT_THAT(run.output, HasSubstr(flag));
  }
  EXPECT_THAT(run.output, testing::Not(HasSubstr("test_corrupt_output")));
}

}  // namespace
}  // namespace kvtier::test
