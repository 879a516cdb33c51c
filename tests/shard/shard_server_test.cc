// ShardServer's life in the tier, against a fake coordinator over real gRPC: registration
// (with retries), heartbeats that report the ready ranges and carry assignment changes,
// registering again when the coordinator has forgotten the shard (a new incarnation: old
// leases need a re-prefill), clean Shutdown (deregisters) versus Kill (does not), health checks,
// holding its port alone, and option checks.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cache/kv/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "kvtier/v1/shard_control.grpc.pb.h"
#include "kvtier/v1/transfer.grpc.pb.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/status_convert.h"
#include "tests/server_probe.h"
#include "tests/shard/test_shard.h"

namespace kvtier {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Counts = FakeCoordinator::Counts;
using test::CheckServing;
using test::WaitServing;

constexpr int kSlot = 0;

class ShardServerTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartTestShard(key_, {Range()}, TestShardOptions(), &shard_));
  }

  static v1::HostedRange Range() { return TestRange(TestModelSpec(DType::kF16), kSlot); }

  // A one-token step on blocks 0 and 1 under a lease for `incarnation` of this slot.
  StepOutcome StepUnder(uint64_t incarnation) {
    const v1::BlockLease lease = SignedLease(key_, TestModelId(), {0, 1}, {incarnation, 1});
    return shard_.client->Send(ZeroStep(TestModelSpec(DType::kF16), kSlot, lease, 5, 1));
  }

  // Waits until the shard has applied an answer given after this call.
  void WaitForFreshAssignment() {
    const int seen = shard_.coordinator->counts().heartbeats;
    ASSERT_TRUE(shard_.coordinator->WaitUntil(
        [seen](const Counts& counts) { return counts.heartbeats >= seen + 2; }));
  }

  const std::string key_ = NewLeaseKey();
  TestShard shard_;
};

TEST_F(ShardServerTest, RegistersItsAddressAndCapacityThenHeartbeats) {
  const Counts counts = shard_.coordinator->counts();
  EXPECT_EQ(counts.registrations, 1);
  EXPECT_EQ(counts.last_registration.address(), shard_.server->address());
  EXPECT_EQ(shard_.server->address(), absl::StrCat("127.0.0.1:", shard_.server->port()));
  EXPECT_EQ(counts.last_registration.capacity_bytes(), TestShardOptions().capacity_bytes);
  EXPECT_TRUE(
      shard_.coordinator->WaitUntil([](const Counts& counts) { return counts.heartbeats >= 3; }));
  EXPECT_THAT(shard_.coordinator->counts().ready_incarnations, ElementsAre(1));
  const StepOutcome outcome = StepUnder(1);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
}

TEST_F(ShardServerTest, RetriesRegistrationUntilTheCoordinatorAccepts) {
  FakeCoordinator coordinator(key_, {Range()});
  coordinator.RefuseRegistrations(3);
  ShardServerOptions options = TestShardOptions();
  options.coordinator_address = coordinator.address();
  absl::StatusOr<std::unique_ptr<ShardServer>> server = ShardServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitUntilRegistered(absl::Seconds(10)));
  EXPECT_EQ(coordinator.counts().refused_registrations, 3);
  EXPECT_EQ(coordinator.counts().registrations, 1);
}

TEST_F(ShardServerTest, RegistersAgainWhenForgottenAndRefusesTheOldIncarnation) {
  ASSERT_TRUE(StepUnder(1).status.ok());
  shard_.coordinator->ForgetShards();
  // Registered again, and heartbeating: the new assignment is applied.
  ASSERT_TRUE(shard_.coordinator->WaitUntil([](const Counts& counts) {
    return counts.registrations == 2 && counts.heartbeats_since_registration >= 1;
  }));
  EXPECT_GE(shard_.coordinator->counts().not_found_heartbeats, 1);
  EXPECT_THAT(shard_.coordinator->counts().ready_incarnations, ElementsAre(2));

  const StepOutcome old = StepUnder(1);
  EXPECT_EQ(old.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << old.status.error_message();
  EXPECT_EQ(ReasonOf(FromGrpcStatus(old.status)), v1::ERROR_REASON_REPREFILL_REQUIRED);
  EXPECT_THAT(old.status.error_message(),
              HasSubstr("issued for incarnation 1 of slot 0, this shard is incarnation 2: its "
                        "K/V was lost; open a new session and re-prefill"));
  const StepOutcome fresh = StepUnder(2);
  EXPECT_TRUE(fresh.status.ok()) << fresh.status.error_message();
}

TEST_F(ShardServerTest, FollowsTheAssignmentInHeartbeatAnswers) {
  shard_.coordinator->SetRanges({});
  ASSERT_NO_FATAL_FAILURE(WaitForFreshAssignment());
  EXPECT_THAT(shard_.coordinator->counts().ready_incarnations, IsEmpty());
  const StepOutcome dropped = StepUnder(1);
  EXPECT_EQ(dropped.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(dropped.status.error_message(), HasSubstr("plan.model"));

  shard_.coordinator->SetRanges({Range()});
  ASSERT_NO_FATAL_FAILURE(WaitForFreshAssignment());
  EXPECT_THAT(shard_.coordinator->counts().ready_incarnations, ElementsAre(1));
  const StepOutcome restored = StepUnder(1);
  EXPECT_TRUE(restored.status.ok()) << restored.status.error_message();
}

TEST_F(ShardServerTest, ShutdownDeregistersAndStopsServing) {
  shard_.server->Shutdown();
  EXPECT_THAT(shard_.coordinator->counts().deregistered, ElementsAre(1));
  EXPECT_EQ(StepUnder(1).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  shard_.server->Shutdown();  // idempotent
  shard_.server.reset();
  EXPECT_EQ(shard_.coordinator->counts().deregistered.size(), 1u);
}

TEST_F(ShardServerTest, KillStopsServingWithoutDeregistering) {
  shard_.server->Kill();
  EXPECT_EQ(StepUnder(1).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  shard_.server.reset();  // no Shutdown after a Kill
  EXPECT_TRUE(shard_.coordinator->counts().deregistered.empty());
}

TEST_F(ShardServerTest, AdvertisesTheAddressItIsGiven) {
  FakeCoordinator coordinator(key_, {Range()});
  ShardServerOptions options = TestShardOptions();
  options.advertised_address = "shard-7.example:7000";
  options.coordinator_address = coordinator.address();
  absl::StatusOr<std::unique_ptr<ShardServer>> server = ShardServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->address(), "shard-7.example:7000");
  ASSERT_TRUE((*server)->WaitUntilRegistered(absl::Seconds(10)));
  EXPECT_EQ(coordinator.counts().last_registration.address(), "shard-7.example:7000");
}

TEST_F(ShardServerTest, AnswersHealthChecks) {
  EXPECT_TRUE(CheckServing(shard_.server->address()).ok());
  EXPECT_TRUE(
      CheckServing(shard_.server->address(), v1::AttentionService::service_full_name()).ok());
}

TEST_F(ShardServerTest, HealthIsServingOnlyOnceItsRangesAreHosted) {
  FakeCoordinator coordinator(key_, {});  // registers the shard, assigns it nothing
  ShardServerOptions options = TestShardOptions();
  options.coordinator_address = coordinator.address();
  absl::StatusOr<std::unique_ptr<ShardServer>> server = ShardServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitUntilRegistered(absl::Seconds(10)));
  const std::string address = (*server)->address();
  EXPECT_FALSE(CheckServing(address).ok());
  EXPECT_FALSE(CheckServing(address, v1::AttentionService::service_full_name()).ok());
  EXPECT_TRUE(CheckServing(address, v1::ShardControlService::service_full_name()).ok());
  EXPECT_TRUE(CheckServing(address, v1::BlockTransferService::service_full_name()).ok());

  coordinator.SetRanges({Range()});
  EXPECT_TRUE(WaitServing(address).ok());
  EXPECT_TRUE(CheckServing(address, v1::AttentionService::service_full_name()).ok());
}

TEST_F(ShardServerTest, ASecondShardOnItsPortFailsNamingItAndTheFirstServesOn) {
  ShardServerOptions options = TestShardOptions();
  options.listen_address = shard_.server->address();
  options.coordinator_address = shard_.coordinator->address();
  const absl::StatusOr<std::unique_ptr<ShardServer>> second = ShardServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_EQ(second.status().message(),
            absl::StrCat("listen_address: ", shard_.server->address(), " is already in use"));
  EXPECT_TRUE(CheckServing(shard_.server->address()).ok());
  EXPECT_TRUE(StepUnder(1).status.ok());
  EXPECT_EQ(shard_.coordinator->counts().registrations, 1);
}

TEST(ShardServerOptionsTest, StartRefusesBadOptionsNamingThem) {
  struct Case {
    void (*spoil)(ShardServerOptions&);
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](ShardServerOptions& o) { o.listen_address = "no-port"; },
       "listen_address: expected host:port, got \"no-port\""},
      {[](ShardServerOptions& o) { o.listen_address = "127.0.0.1:99999"; }, "listen_address"},
      {[](ShardServerOptions& o) { o.advertised_address = "host:port"; }, "advertised_address"},
      {[](ShardServerOptions& o) { o.capacity_bytes = 0; }, "capacity_bytes: expected > 0"},
      {[](ShardServerOptions& o) { o.attention_threads = -1; }, "attention_threads"},
      {[](ShardServerOptions& o) { o.max_message_bytes = 0; }, "max_message_bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    ShardServerOptions options = TestShardOptions();
    c.spoil(options);
    const absl::StatusOr<std::unique_ptr<ShardServer>> server = ShardServer::Start(options);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
    EXPECT_THAT(server.status().message(), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace kvtier
