// A secured tier as operators run it: kvtier-coordinator and two kvtier-shard processes with
// mTLS and bearer tokens from files (--credentials_file, --token_file, --tls_*), the shards
// registering with a shard credential and the coordinator calling them with its own. A
// front-end with its token and certificate computes attention; one without a token is refused;
// a server given an unreadable credentials file exits 2, naming the flag.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"
#include "tests/service/tier_harness.h"
#include "tests/test_pki.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream file(path);
  file << text;
  ASSERT_TRUE(file.good()) << path;
}

// The flags every process of the tier shares: the PKI and whose token it holds.
std::vector<std::string> SecurityFlags(const TestPki& pki, const std::string& token_file) {
  return {"--tls_cert_file=" + pki.server.cert_file,
          "--tls_key_file=" + pki.server.key_file,
          "--tls_ca_file=" + pki.server.ca_file,
          "--tls_require_client_cert",
          "--credentials_file=" + pki.dir + "/credentials",
          "--token_file=" + token_file};
}

std::vector<std::string> With(std::vector<std::string> command,
                              const std::vector<std::string>& more) {
  command.insert(command.end(), more.begin(), more.end());
  return command;
}

TEST(MultiProcessSecurityTest, SecuredProcessesServeOnlyCredentialedFrontEnds) {
  absl::StatusOr<TestPki> pki = MakeTestPki();
  ASSERT_TRUE(pki.ok()) << pki.status();
  const std::string shard_token = NewToken();
  const std::string coordinator_token = NewToken();
  const std::string acme_token = NewToken();
  WriteFile(pki->dir + "/credentials",
            absl::StrCat("sha256:", TokenHashHex(shard_token), " shard\n",  //
                         "sha256:", TokenHashHex(coordinator_token), " coordinator\n",
                         "sha256:", TokenHashHex(acme_token), " frontend acme\n"));
  WriteFile(pki->dir + "/shard.token", shard_token + "\n");
  WriteFile(pki->dir + "/coordinator.token", coordinator_token + "\n");

  ChildProcess coordinator(
      With({KVTIER_COORDINATOR_BIN, "--listen=127.0.0.1:0", "--heartbeat_interval=20ms",
            "--model=name=m,version=test,layers=2,kv_heads=2,q_heads=4,head_dim=32,block_size=4,"
            "blocks=256,shards=2"},
           SecurityFlags(*pki, pki->dir + "/coordinator.token")));
  const std::string serving = coordinator.LineAfter("kvtier-coordinator: serving on ");
  ASSERT_FALSE(serving.empty()) << coordinator.ErrorOutput();
  const std::string address = serving.substr(0, serving.find(','));
  std::vector<std::unique_ptr<ChildProcess>> shards;
  for (int i = 0; i < 2; ++i) {
    shards.push_back(std::make_unique<ChildProcess>(
        With({KVTIER_SHARD_BIN, "--listen=127.0.0.1:0", "--coordinator=" + address, "--threads=1",
              "--capacity_gib=0.25"},
             SecurityFlags(*pki, pki->dir + "/shard.token"))));
    ASSERT_FALSE(shards.back()->LineAfter("kvtier-shard: serving on ").empty())
        << shards.back()->ErrorOutput();
  }

  ClientOptions options;
  options.coordinator_address = address;
  options.security = ChannelSecurity{.tls = Read(pki->client), .token = acme_token};
  std::unique_ptr<Client> client = *Client::Connect(options);
  absl::StatusOr<std::unique_ptr<Session>> opened;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (true) {  // UNAVAILABLE until both shards have registered
    opened = client->OpenSession(TestModelId("m"), "acme");
    if (!absl::IsUnavailable(opened.status()) || absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(opened.ok()) << opened.status() << coordinator.ErrorOutput();
  CheckedSession session = Checked(*std::move(opened));
  std::mt19937_64 rng(FreshSeed());
  EXPECT_TRUE(CheckedStep(*client, {&session}, {6}, rng).ok());
  EXPECT_TRUE(CheckedStep(*client, {&session}, {1}, rng).ok());
  // The coordinator's own calls to the shards (a revocation) carry its credential.
  absl::StatusOr<v1::InvalidationResult> invalidated =
      client->InvalidateSession(session.session->id(), "acme");
  ASSERT_TRUE(invalidated.ok()) << invalidated.status();
  EXPECT_EQ(invalidated->shards_acknowledged(), 2);

  options.security.token.clear();
  std::unique_ptr<Client> anonymous = *Client::Connect(options);
  absl::StatusOr<std::unique_ptr<Session>> refused =
      anonymous->OpenSession(TestModelId("m"), "acme");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("needs a frontend credential"));

  for (auto& shard : shards) shard->Signal(SIGTERM);
  coordinator.Signal(SIGTERM);
  for (auto& shard : shards) EXPECT_EQ(shard->Wait(), 0);
  EXPECT_EQ(coordinator.Wait(), 0);
}

TEST(MultiProcessSecurityTest, UnreadableCredentialsExitNamingTheFlag) {
  for (const std::string& binary : {std::string(KVTIER_COORDINATOR_BIN),
                                    std::string(KVTIER_SHARD_BIN), std::string(KVTIER_LOCAL_BIN)}) {
    SCOPED_TRACE(binary);
    ChildProcess process({binary, "--credentials_file=/nonexistent/credentials"});
    const int status = process.Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
    EXPECT_THAT(process.ErrorOutput(), HasSubstr("credentials_file: "));
    EXPECT_THAT(process.ErrorOutput(), HasSubstr("/nonexistent/credentials"));
  }
}

}  // namespace
}  // namespace kvtier::test
