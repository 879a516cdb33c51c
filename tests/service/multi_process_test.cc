// The tier as operators run it: kvtier-coordinator and kvtier-shard as separate processes. A
// shard process killed with SIGKILL mid-session makes the session fail with ABORTED once the
// coordinator notices; a new shard process takes the vacant head range and new sessions work;
// SIGTERM stops every process cleanly; the coordinator's log tells that story, and a shard too
// small for any head range says so with the numbers. A server binary given a port in use exits
// 1, naming it.
#include <signal.h>
#include <sys/wait.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvtier/v1/registry.grpc.pb.h"
#include "service/coordinator_server.h"
#include "tests/child_process.h"
#include "tests/log_capture.h"
#include "tests/server_probe.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::vector<std::string> ShardCommand(const std::string& coordinator,
                                      const std::string& capacity_gib = "0.25") {
  return {KVTIER_SHARD_BIN, "--listen=127.0.0.1:0", "--coordinator=" + coordinator, "--threads=1",
          "--capacity_gib=" + capacity_gib};
}

// Waits until `process` has written `text` to stderr; false after 20 s.
bool WaitForErrorOutput(const ChildProcess& process, const std::string& text) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!absl::StrContains(process.ErrorOutput(), text)) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// A matcher for a log line of `program` that says `text`.
::testing::Matcher<const std::string&> LogLineSaying(const std::string& program,
                                                     const std::string& text) {
  return AllOf(MatchesRegex(absl::StrCat(kLogTimeRegex, " ", program, ": .*")), HasSubstr(text));
}

TEST(MultiProcessTest, KilledShardProcessFailsSessionsThenAReplacementServes) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  ChildProcess coordinator({KVTIER_COORDINATOR_BIN, "--listen=127.0.0.1:0",
                            "--heartbeat_interval=20ms", "--heartbeat_timeout=1s",
                            "--model=name=m,version=test,layers=2,kv_heads=3,q_heads=6,head_dim=32,"
                            "block_size=4,blocks=256,shards=2"});
  ASSERT_TRUE(coordinator.started());
  const std::string address = coordinator.LineAfter("kvtier-coordinator: serving on ");
  ASSERT_FALSE(address.empty());
  const std::string coordinator_address = address.substr(0, address.find(','));
  // 0.0001 GiB fits neither head range (512 KiB and 256 KiB of bf16 K/V).
  ChildProcess tiny(ShardCommand(coordinator_address, "0.0001"));
  const std::string tiny_serving = tiny.LineAfter("kvtier-shard: serving on ");
  ASSERT_FALSE(tiny_serving.empty());
  const std::string tiny_address = tiny_serving.substr(0, tiny_serving.find(','));
  const std::string no_room =
      "capacity 107374 bytes (107374 free) fits no vacant head range (2 vacant): the smallest, "
      "model m@test slot 1 (KV heads [2, 3)), needs 262144 bytes";
  ASSERT_TRUE(WaitForErrorOutput(tiny, no_room)) << tiny.ErrorOutput();
  auto shard_a = std::make_unique<ChildProcess>(ShardCommand(coordinator_address));
  auto shard_b = std::make_unique<ChildProcess>(ShardCommand(coordinator_address));
  ASSERT_FALSE(shard_a->LineAfter("kvtier-shard: serving on ").empty());
  ASSERT_FALSE(shard_b->LineAfter("kvtier-shard: serving on ").empty());

  ClientOptions options;
  options.coordinator_address = coordinator_address;
  std::unique_ptr<Client> client = *Client::Connect(options);
  auto open = [&]() -> absl::StatusOr<std::unique_ptr<Session>> {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (true) {  // until every head range is served
      absl::StatusOr<std::unique_ptr<Session>> session = client->OpenSession(TestModelId("m"), "t");
      if (!absl::IsUnavailable(session.status()) || absl::Now() > deadline) return session;
      absl::SleepFor(absl::Milliseconds(10));
    }
  };
  absl::StatusOr<std::unique_ptr<Session>> opened = open();
  ASSERT_TRUE(opened.ok()) << opened.status();
  CheckedSession session = Checked(*std::move(opened));
  ASSERT_TRUE(CheckedStep(*client, {&session}, {9}, rng).ok());
  ASSERT_TRUE(CheckedStep(*client, {&session}, {1}, rng).ok());

  shard_b->Signal(SIGKILL);
  shard_b->Wait();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::Status status;
  do {  // UNAVAILABLE until the coordinator drops the shard, then ABORTED
    status = CheckedStep(*client, {&session}, {1}, rng);
    ASSERT_FALSE(status.ok());
  } while (!IsReprefillRequired(status) && absl::Now() < deadline);
  EXPECT_TRUE(IsReprefillRequired(status)) << status;
  EXPECT_NE(status.message().find("missed heartbeats"), absl::string_view::npos) << status;

  ChildProcess replacement(ShardCommand(coordinator_address));
  ASSERT_FALSE(replacement.LineAfter("kvtier-shard: serving on ").empty());
  absl::StatusOr<std::unique_ptr<Session>> fresh = open();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  CheckedSession second = Checked(*std::move(fresh));
  EXPECT_TRUE(CheckedStep(*client, {&second}, {6}, rng).ok());
  EXPECT_TRUE(CheckedStep(*client, {&second}, {1}, rng).ok());

  for (ChildProcess* process : {&tiny, shard_a.get(), &replacement, &coordinator}) {
    process->Signal(SIGTERM);
    const int exit_status = process->Wait();
    EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << exit_status;
  }

  // The lifecycle, as the log tells it.
  const std::vector<std::string> shard_log = absl::StrSplit(tiny.ErrorOutput(), '\n');
  EXPECT_THAT(shard_log,
              Contains(LogLineSaying("kvtier-shard", "no head range from coordinator " +
                                                         coordinator_address + ": " + no_room)));
  const std::vector<std::string> log = absl::StrSplit(coordinator.ErrorOutput(), '\n');
  for (const std::string& text : {
           "coordinator serving on " + coordinator_address,
           "shard 1 joined: " + tiny_address + ", capacity 107374 bytes",
           "shard 1 at " + tiny_address + ": " + no_room,
           std::string("model m@test slot 0 (KV heads [0, 2), 524288 bytes) assigned to shard "),
           std::string("model m@test slot 1 (KV heads [2, 3), 262144 bytes) assigned to shard "),
           std::string("model m@test ready: all 2 head ranges served"),
           std::string(" missed heartbeats for 1s"),
           std::string(" vacant; 1 sessions dropped, their K/V lost with shard "),
           std::string(" left the tier"),
       }) {
    EXPECT_THAT(log, Contains(LogLineSaying("kvtier-coordinator", text))) << text;
  }
}

TEST(MultiProcessTest, ServersGivenAPortInUseExitNamingIt) {
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> running = CoordinatorServer::Start({});
  ASSERT_TRUE(running.ok()) << running.status();
  const std::string address = (*running)->address();
  const std::string port = address.substr(address.rfind(':') + 1);
  const std::vector<std::vector<std::string>> commands = {
      {KVTIER_COORDINATOR_BIN, "--listen=" + address},
      {KVTIER_SHARD_BIN, "--listen=" + address, "--coordinator=" + address, "--threads=1"},
      {KVTIER_LOCAL_BIN, "--host=127.0.0.1", "--port=" + port, "--threads_per_shard=1"},
  };
  for (const std::vector<std::string>& command : commands) {
    SCOPED_TRACE(command[0]);
    ChildProcess process(command);
    ASSERT_TRUE(process.started());
    const int status = process.Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << DescribeExit(status);
    EXPECT_THAT(process.ErrorOutput(),
                HasSubstr(absl::StrCat("listen_address: ", address, " is already in use")));
  }
  EXPECT_TRUE(CheckServing(address, v1::ShardRegistryService::service_full_name()).ok());
}

}  // namespace
}  // namespace kvtier::test
