// The tier as operators run it: kvtier-coordinator and kvtier-shard as separate processes. A
// shard process killed with SIGKILL mid-session makes the session fail with ABORTED once the
// coordinator notices; a new shard process takes the vacant head range and new sessions work;
// SIGTERM stops every process cleanly. A server binary given a port in use exits 1, naming it.
#include <signal.h>
#include <sys/wait.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/coordinator_server.h"
#include "tests/child_process.h"
#include "tests/server_probe.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> ShardCommand(const std::string& coordinator) {
  return {KVTIER_SHARD_BIN, "--listen=127.0.0.1:0", "--coordinator=" + coordinator, "--threads=1",
          "--capacity_gib=0.25"};
}

TEST(MultiProcessTest, KilledShardProcessFailsSessionsThenAReplacementServes) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  ChildProcess coordinator({KVTIER_COORDINATOR_BIN, "--listen=127.0.0.1:0",
                            "--heartbeat_interval=20ms", "--heartbeat_timeout=1s",
                            "--model=name=m,layers=2,kv_heads=3,q_heads=6,head_dim=32,block_size=4,"
                            "blocks=256,shards=2"});
  ASSERT_TRUE(coordinator.started());
  const std::string address = coordinator.LineAfter("kvtier-coordinator: serving on ");
  ASSERT_FALSE(address.empty());
  const std::string coordinator_address = address.substr(0, address.find(','));
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
      absl::StatusOr<std::unique_ptr<Session>> session = client->OpenSession("m", "t");
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

  for (ChildProcess* process : {shard_a.get(), &replacement, &coordinator}) {
    process->Signal(SIGTERM);
    const int exit_status = process->Wait();
    EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << exit_status;
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
  EXPECT_TRUE(CheckServing(address).ok());
}

}  // namespace
}  // namespace kvtier::test
