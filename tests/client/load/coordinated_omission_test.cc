// Coordinated omission: in open loop, a server stall must show in the latency counted from the
// sessions' arrivals, not be hidden by the sends the stalled tool could not make. The tier is a
// kvtier-local process, stalled for a second with SIGSTOP while kvtier-load runs at 40
// arrivals/s with at most 2 sessions at a time: the arrivals during the stall wait for the
// tier, so from-arrival TTFT has the stall in its tail (about 1/3 of the sessions waited more
// than a quarter of it), while service TTFT (timed from the actual send) only has it for the
// at most 2 sessions caught in flight.
#include <signal.h>

#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"
#include "tests/client/load/load_tool.h"

namespace kvtier::test {
namespace {

TEST(CoordinatedOmissionTest, AStallShowsInOpenLoopLatencyButNotInServiceTime) {
  ChildProcess tier({KVTIER_LOCAL_BIN, "--port=0", "--threads_per_shard=1",
                     "--model=name=load,layers=2,kv_heads=2,q_heads=4,head_dim=32,dtype=fp32,"
                     "blocks=1024"});
  ASSERT_TRUE(tier.started());
  const std::string line = tier.LineAfter("kvtier-local: coordinator ");
  const std::string address = line.substr(0, line.find(','));
  ASSERT_FALSE(address.empty()) << tier.ErrorOutput();

  const std::string json = TempPath("open.json");
  ChildProcess load({KVTIER_LOAD_BIN, "--coordinator=" + address, "--mode=open",
                     "--session_rate=40", "--max_sessions=2", "--duration=3s", "--turns=1",
                     "--prompt_tokens=16", "--decode_tokens=2", "--json=" + json});
  ASSERT_TRUE(load.started());
  constexpr absl::Duration kStall = absl::Seconds(1);
  absl::SleepFor(absl::Seconds(1));
  tier.Signal(SIGSTOP);
  absl::SleepFor(kStall);
  tier.Signal(SIGCONT);
  const std::string output = load.RestOfOutput();
  const int status = load.Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeExit(status) << "\n"
                                                             << output << load.ErrorOutput();
  EXPECT_THAT(output, testing::HasSubstr("ttft (from arrival)"));
  EXPECT_THAT(output, testing::HasSubstr("ttft (service)"));

  const google::protobuf::Struct report = ReadJson(json);
  const double stall_ms = absl::ToDoubleMilliseconds(kStall);
  EXPECT_GT(Number(report, "summary.sessions_started"), 60);
  // The first arrival after the stall began waited nearly all of it.
  EXPECT_GE(Number(report, "summary.latency_ms.ttft.max"), 0.8 * stall_ms);
  EXPECT_GE(Number(report, "summary.latency_ms.ttft.p90"), 0.25 * stall_ms);
  EXPECT_LT(Number(report, "summary.latency_ms.ttft_service.p90"), 0.25 * stall_ms);
  EXPECT_GE(Number(report, "summary.latency_ms.turn.p90"), 0.25 * stall_ms);
  EXPECT_LT(Number(report, "summary.latency_ms.turn_service.p90"), 0.25 * stall_ms);
  tier.Signal(SIGTERM);
  tier.Wait();
}

}  // namespace
}  // namespace kvtier::test
