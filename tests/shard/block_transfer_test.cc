// Shard-to-shard block transfers (kvtier.v1.BlockTransferService) between two in-process shards
// with CPU pools, over real gRPC: a pull copies exactly the listed blocks' K/V, every layer, byte
// for byte, and touches nothing else; bad pulls are refused with the status and field they
// deserve; a source that fails, stalls or dies mid-transfer gives a clear status, and the
// destination keeps serving.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvtier/v1/transfer.grpc.pb.h"
#include "tests/server_probe.h"
#include "tests/shard/block_transfer_fixture.h"
#include "tests/shard/fake_block_source.h"

namespace kvtier {
namespace {

using grpc::StatusCode;
using ::testing::AnyOf;
using ::testing::HasSubstr;

class BlockTransferTest : public BlockTransferFixture {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(StartShards(PoolDevice(), PoolDevice())); }

  static void ExpectStatus(const grpc::Status& status, StatusCode code,
                           const std::string& message) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  }
};

TEST_F(BlockTransferTest, PullCopiesTheListedBlocksExactlyAndNothingElse) {
  const PoolContents written = WriteRandomBlocks(source_, {3, 4, 5, 9, 20, 21});
  const PoolContents kept = WriteRandomBlocks(destination_, {10});
  const std::vector<int32_t> pulled = {21, 3, 9, 4};  // out of order, with runs
  ASSERT_NO_FATAL_FAILURE(ExpectPullCopies(pulled, v1::TRANSPORT_UNSPECIFIED, v1::TRANSPORT_GRPC));
  EXPECT_THAT(last_response_.transport_reason(),
              HasSubstr("NCCL not used: this shard cannot use it"));

  // What the steps wrote, byte for byte, in the pulled blocks; zeros where nothing was.
  const PoolContents after = ReadPool(destination_);
  const BlockLayer zero{std::string(TransferBlockBytes(), '\0'),
                        std::string(TransferBlockBytes(), '\0')};
  for (int layer = 0; layer < kTestLayers; ++layer) {
    SCOPED_TRACE(absl::StrCat("layer ", layer));
    for (int32_t block : pulled)
      EXPECT_TRUE(after.at({block, layer}) == written.at({block, layer}));
    EXPECT_TRUE(after.at({10, layer}) == kept.at({10, layer}));
    for (int32_t block : {0, 5, 20, 31}) EXPECT_TRUE(after.at({block, layer}) == zero);
  }
}

TEST_F(BlockTransferTest, PullsOverGrpcWhenAsked) {
  WriteRandomBlocks(source_, {0, 31});
  ASSERT_NO_FATAL_FAILURE(ExpectPullCopies({31, 0}, v1::TRANSPORT_GRPC, v1::TRANSPORT_GRPC));
  EXPECT_EQ(last_response_.transport_reason(), "");
}

TEST_F(BlockTransferTest, RefusesBadPullsNamingTheFieldAndKeepsServing) {
  // Sources that do not hold what the destination does.
  TestShard other_slot;
  ASSERT_NO_FATAL_FAILURE(StartShard(TestRange(TransferSpec(), 1), &other_slot));
  v1::ModelSpec smaller = TransferSpec();
  smaller.set_num_blocks(kTestBlocks / 2);
  TestShard other_shape;
  ASSERT_NO_FATAL_FAILURE(StartShard(TestRange(smaller, kTransferSlot), &other_shape));
  v1::ModelSpec renamed = TransferSpec();
  renamed.mutable_id()->set_name("other");
  TestShard other_model;
  ASSERT_NO_FATAL_FAILURE(StartShard(TestRange(renamed, kTransferSlot), &other_model));

  const std::string source = source_.server->address();
  struct Case {
    const char* what;
    v1::PullBlocksRequest request;
    StatusCode code;
    std::string message;
  };
  auto edited = [&source](std::function<void(v1::PullBlocksRequest&)> edit) {
    v1::PullBlocksRequest request = PullRequest(source, {1, 2});
    edit(request);
    return request;
  };
  const std::vector<Case> cases = {
      {"an unknown model", edited([](auto& r) { r.mutable_model()->set_name("nope"); }),
       StatusCode::NOT_FOUND, "model.name: this shard holds no range of model \"nope\""},
      {"another version", edited([](auto& r) { r.mutable_model()->set_version("2"); }),
       StatusCode::NOT_FOUND,
       "model.version: this shard holds version \"1\" of model \"m\", not \"2\""},
      {"another slot", edited([](auto& r) { r.set_slot(1); }), StatusCode::NOT_FOUND,
       "slot: this shard holds slot 0 of model \"m\", not 1"},
      {"no blocks", edited([](auto& r) { r.clear_block_ids(); }), StatusCode::INVALID_ARGUMENT,
       "block_ids: empty"},
      {"a block past the pool", edited([](auto& r) { r.add_block_ids(kTestBlocks); }),
       StatusCode::INVALID_ARGUMENT, "block_ids[2]: expected 0..31, got 32"},
      {"a negative block", edited([](auto& r) { r.set_block_ids(0, -1); }),
       StatusCode::INVALID_ARGUMENT, "block_ids[0]: expected 0..31, got -1"},
      {"a block twice", edited([](auto& r) { r.add_block_ids(1); }), StatusCode::INVALID_ARGUMENT,
       "block_ids[2]: block 1 is already block_ids[0]"},
      {"no source", edited([](auto& r) { r.clear_source_address(); }), StatusCode::INVALID_ARGUMENT,
       "source_address"},
      {"a source without a port", edited([](auto& r) { r.set_source_address("localhost"); }),
       StatusCode::INVALID_ARGUMENT, "source_address"},
      {"a transport outside the enum",
       edited([](auto& r) { r.set_transport(static_cast<v1::Transport>(7)); }),
       StatusCode::INVALID_ARGUMENT, "transport: expected AUTO, GRPC or NCCL, got 7"},
      {"NCCL between CPU pools", edited([](auto& r) { r.set_transport(v1::TRANSPORT_NCCL); }),
       StatusCode::FAILED_PRECONDITION, "transport: NCCL requested, but this shard cannot use it"},
      {"a source holding another model",
       edited([&](auto& r) { r.set_source_address(other_model.server->address()); }),
       StatusCode::NOT_FOUND,
       absl::StrCat("source ", other_model.server->address(),
                    ": DescribeRange: range.model.id.name: this shard holds no range of model "
                    "\"m\"")},
      {"a source holding another slot",
       edited([&](auto& r) { r.set_source_address(other_slot.server->address()); }),
       StatusCode::NOT_FOUND, "range.slot: this shard holds slot 1 of model \"m\", not 0"},
      {"a source with another pool shape",
       edited([&](auto& r) { r.set_source_address(other_shape.server->address()); }),
       StatusCode::FAILED_PRECONDITION,
       "range.model: slot 0 of model \"m\" here is 2 layers x 16 blocks x 2 heads x 4 tokens x "
       "64 bf16 over KV heads [0, 2) of 2 head ranges; the request's spec gives 2 layers x 32 "
       "blocks"},
      {"a source that serves no BlockTransferService",
       edited([&](auto& r) { r.set_source_address(destination_.coordinator->address()); }),
       StatusCode::FAILED_PRECONDITION,
       absl::StrCat("source ", destination_.coordinator->address(),
                    ": DescribeRange: the source failed with UNIMPLEMENTED")},
      {"a source that is not there", edited([](auto& r) { r.set_source_address("127.0.0.1:1"); }),
       StatusCode::UNAVAILABLE, "source 127.0.0.1:1: DescribeRange"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ExpectStatus(Pull(destination_, c.request), c.code, c.message);
  }
  ExpectDestinationServes();
}

TEST_F(BlockTransferTest, SourceRefusesBadReadsAndNcclSendsNamingTheField) {
  const std::unique_ptr<v1::BlockTransferService::Stub> stub =
      TransferStub(source_.server->address());
  v1::TransferRange range;
  *range.mutable_model() = TransferSpec();
  range.set_slot(kTransferSlot);

  auto read = [&](const v1::ReadBlocksRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(TestDeadline());
    auto reader = stub->ReadBlocks(&context, request);
    v1::ReadBlocksResponse data;
    while (reader->Read(&data)) {
    }
    return reader->Finish();
  };
  v1::ReadBlocksRequest bad_spec;
  *bad_spec.mutable_range() = range;
  bad_spec.mutable_range()->mutable_model()->set_head_dim(0);
  bad_spec.add_block_ids(0);
  ExpectStatus(read(bad_spec), StatusCode::INVALID_ARGUMENT, "range.model.head_dim");
  v1::ReadBlocksRequest no_blocks;
  *no_blocks.mutable_range() = range;
  ExpectStatus(read(no_blocks), StatusCode::INVALID_ARGUMENT, "block_ids: empty");

  auto send = [&](const std::string& unique_id) {
    v1::SendBlocksNcclRequest request;
    *request.mutable_range() = range;
    request.add_block_ids(0);
    request.set_nccl_unique_id(unique_id);
    v1::SendBlocksNcclResponse response;
    grpc::ClientContext context;
    context.set_deadline(TestDeadline());
    return stub->SendBlocksNccl(&context, request, &response);
  };
  ExpectStatus(send("short"), StatusCode::INVALID_ARGUMENT,
               "nccl_unique_id: expected 128 bytes, got 5");
  const grpc::Status cpu_pool = send(std::string(128, '\0'));
  EXPECT_EQ(cpu_pool.error_code(), StatusCode::FAILED_PRECONDITION) << cpu_pool.error_message();
  EXPECT_THAT(cpu_pool.error_message(),
              AnyOf(HasSubstr("not in CUDA device memory"), HasSubstr("built without NCCL")));
}

TEST_F(BlockTransferTest, RefusesBlocksLargerThanTheMessageLimit) {
  ShardServerOptions options = TestShardOptions();
  options.max_message_bytes = static_cast<int>(2 * TransferBlockBytes());  // no room for framing
  TestShard small;
  ASSERT_NO_FATAL_FAILURE(StartShard(TestRange(TransferSpec(), kTransferSlot), &small, options));
  ExpectStatus(Pull(small, PullRequest(source_.server->address(), {1})),
               StatusCode::FAILED_PRECONDITION,
               "max_message_bytes: one block of one layer (K and V of 4 tokens x 2 heads x 64 x "
               "bf16) takes 2112 bytes on the wire, over this shard's 2048");
}

TEST_F(BlockTransferTest, SourceThatDiesMidTransferFailsThePullAndTheDestinationServesOn) {
  FakeBlockSource source(FakeBlockSource::Behavior::kHang);
  grpc::Status status;
  std::thread pull([&] { status = Pull(destination_, PullRequest(source.address(), {5, 6})); });
  ASSERT_TRUE(source.WaitUntilFirstSent(absl::Seconds(10)));
  source.Kill();
  pull.join();
  ExpectStatus(status, StatusCode::UNAVAILABLE,
               absl::StrCat("source ", source.address(), ": ReadBlocks after 1 of 4 block-layers"));
  ExpectDestinationServes();
}

// A destination shutting down cancels its calls to the source instead of waiting for them (a
// pull with a 10-minute deadline would otherwise hold Shutdown that long).
TEST_F(BlockTransferTest, DestinationShuttingDownCancelsItsCallToTheSource) {
  FakeBlockSource source(FakeBlockSource::Behavior::kHang);
  grpc::Status status;
  std::thread pull([&] {
    status = Pull(destination_, PullRequest(source.address(), {5}), nullptr, absl::Minutes(10));
  });
  ASSERT_TRUE(source.WaitUntilFirstSent(absl::Seconds(10)));
  destination_.server->Shutdown();
  pull.join();
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(source.WaitUntilCancelled(absl::Seconds(10)));
}

TEST_F(BlockTransferTest, SourceThatStallsFailsAtTheDeadline) {
  FakeBlockSource source(FakeBlockSource::Behavior::kHang);
  const grpc::Status status =
      Pull(destination_, PullRequest(source.address(), {5}), nullptr, absl::Seconds(1));
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  ExpectDestinationServes();
}

TEST_F(BlockTransferTest, SourceThatBreaksTheStreamIsInternal) {
  FakeBlockSource early(FakeBlockSource::Behavior::kEndEarly);
  ExpectStatus(Pull(destination_, PullRequest(early.address(), {5, 6})), StatusCode::INTERNAL,
               absl::StrCat("source ", early.address(),
                            ": ReadBlocks after 1 of 4 block-layers: the stream ended"));
  FakeBlockSource disordered(FakeBlockSource::Behavior::kWrongOrder);
  ExpectStatus(Pull(destination_, PullRequest(disordered.address(), {5, 6})), StatusCode::INTERNAL,
               "ReadBlocks after 0 of 4 block-layers: block-layer 0: expected block 5 layer 0, "
               "got block 5 layer 1");
  ExpectDestinationServes();
}

TEST_F(BlockTransferTest, SourceKilledBeforeThePullIsUnavailable) {
  const std::string address = source_.server->address();
  source_.server->Kill();
  ExpectStatus(Pull(destination_, PullRequest(address, {1})), StatusCode::UNAVAILABLE,
               absl::StrCat("source ", address, ": DescribeRange"));
}

TEST_F(BlockTransferTest, ServesReflectionOfTheTransferService) {
  const absl::StatusOr<std::vector<std::string>> services =
      test::ListServices(destination_.server->address());
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, testing::Contains("kvtier.v1.BlockTransferService"));
}

}  // namespace
}  // namespace kvtier
