// CoordinatorServer over real gRPC on loopback: it holds its port alone, so a second server on
// that port fails, naming the address, and the first serves on; its health (and its shards')
// says SERVING only once a model can open sessions.
#include "service/coordinator_server.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "kvtier/v1/shard_control.grpc.pb.h"
#include "service/local/local_tier.h"
#include "tests/server_probe.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

TEST(CoordinatorServerTest, ASecondServerOnItsPortFailsNamingItAndTheFirstServesOn) {
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> first = CoordinatorServer::Start({});
  ASSERT_TRUE(first.ok()) << first.status();
  CoordinatorServerOptions options;
  options.listen_address = (*first)->address();
  const absl::StatusOr<std::unique_ptr<CoordinatorServer>> second =
      CoordinatorServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_EQ(second.status().message(),
            absl::StrCat("listen_address: ", (*first)->address(), " is already in use"));
  EXPECT_TRUE(
      CheckServing((*first)->address(), v1::ShardRegistryService::service_full_name()).ok());
}

TEST(CoordinatorServerTest, HealthIsServingOnlyOnceAModelCanOpenSessions) {
  LocalTierOptions options = FastTier(TestModel("m", 2, 4, 2));
  options.model.reset();  // the shards join with nothing to host
  absl::StatusOr<std::unique_ptr<LocalTier>> tier = LocalTier::Start(options);
  ASSERT_TRUE(tier.ok()) << tier.status();
  const std::string coordinator = (*tier)->coordinator_address();
  const std::string shard = (*tier)->shard_address(0);
  EXPECT_FALSE(CheckServing(coordinator).ok());
  EXPECT_FALSE(CheckServing(coordinator, v1::SessionService::service_full_name()).ok());
  EXPECT_TRUE(CheckServing(coordinator, v1::ShardRegistryService::service_full_name()).ok());
  EXPECT_TRUE(CheckServing(coordinator, v1::AdminService::service_full_name()).ok());
  EXPECT_FALSE(CheckServing(shard).ok());
  EXPECT_FALSE(CheckServing(shard, v1::AttentionService::service_full_name()).ok());
  EXPECT_TRUE(CheckServing(shard, v1::ShardControlService::service_full_name()).ok());

  ASSERT_TRUE((*tier)->coordinator().RegisterModel(TestModel("m", 2, 4, 2)).ok());
  ASSERT_TRUE((*tier)->WaitUntilReady("m", absl::Seconds(10)).ok());
  EXPECT_TRUE(WaitServing(coordinator).ok());
  EXPECT_TRUE(CheckServing(coordinator, v1::SessionService::service_full_name()).ok());
  for (int i = 0; i < (*tier)->num_shards(); ++i) {
    EXPECT_TRUE(WaitServing((*tier)->shard_address(i)).ok());
    EXPECT_TRUE(
        CheckServing((*tier)->shard_address(i), v1::AttentionService::service_full_name()).ok());
  }
}

}  // namespace
}  // namespace kvtier::test
