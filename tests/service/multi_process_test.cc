// The tier as operators run it: kvtier-coordinator and kvtier-shard as separate processes. A
// shard process killed with SIGKILL mid-session makes the session fail with ABORTED once the
// coordinator notices; a new shard process takes the vacant head range and new sessions work;
// SIGTERM stops every process cleanly.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/service/tier_harness.h"

extern char** environ;

namespace kvtier::test {
namespace {

// A child process whose stdout is readable line by line.
class Process {
 public:
  explicit Process(std::vector<std::string> argv) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    std::vector<char*> args;
    for (std::string& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    output_ = fdopen(pipe_fds[0], "r");
  }

  ~Process() {
    if (pid_ > 0) Signal(SIGKILL);
    Wait();
    if (output_ != nullptr) fclose(output_);
  }

  bool started() const { return pid_ > 0; }

  // The next stdout line starting with `prefix`, without it; empty at end of output.
  std::string LineAfter(const std::string& prefix) {
    char buffer[512];
    while (output_ != nullptr && fgets(buffer, sizeof(buffer), output_) != nullptr) {
      absl::string_view line = absl::StripTrailingAsciiWhitespace(buffer);
      if (absl::ConsumePrefix(&line, prefix)) return std::string(line);
    }
    return "";
  }

  void Signal(int signal) { kill(pid_, signal); }

  // The exit status (as waitpid reports it), once.
  int Wait() {
    int status = -1;
    if (pid_ > 0) waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  FILE* output_ = nullptr;
};

std::vector<std::string> ShardCommand(const std::string& coordinator) {
  return {KVTIER_SHARD_BIN, "--listen=127.0.0.1:0", "--coordinator=" + coordinator, "--threads=1",
          "--capacity_gib=0.25"};
}

TEST(MultiProcessTest, KilledShardProcessFailsSessionsThenAReplacementServes) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  Process coordinator({KVTIER_COORDINATOR_BIN, "--listen=127.0.0.1:0", "--heartbeat_interval=20ms",
                       "--heartbeat_timeout=1s",
                       "--model=name=m,version=test,layers=2,kv_heads=3,q_heads=6,head_dim=32,"
                       "block_size=4,"
                       "blocks=256,shards=2"});
  ASSERT_TRUE(coordinator.started());
  const std::string address = coordinator.LineAfter("kvtier-coordinator: serving on ");
  ASSERT_FALSE(address.empty());
  const std::string coordinator_address = address.substr(0, address.find(','));
  auto shard_a = std::make_unique<Process>(ShardCommand(coordinator_address));
  auto shard_b = std::make_unique<Process>(ShardCommand(coordinator_address));
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

  Process replacement(ShardCommand(coordinator_address));
  ASSERT_FALSE(replacement.LineAfter("kvtier-shard: serving on ").empty());
  absl::StatusOr<std::unique_ptr<Session>> fresh = open();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  CheckedSession second = Checked(*std::move(fresh));
  EXPECT_TRUE(CheckedStep(*client, {&second}, {6}, rng).ok());
  EXPECT_TRUE(CheckedStep(*client, {&second}, {1}, rng).ok());

  for (Process* process : {shard_a.get(), &replacement, &coordinator}) {
    process->Signal(SIGTERM);
    const int exit_status = process->Wait();
    EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << exit_status;
  }
}

}  // namespace
}  // namespace kvtier::test
