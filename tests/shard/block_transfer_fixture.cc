#include "tests/shard/block_transfer_fixture.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "proto/wire/model_spec.h"
#include "service/head_placement.h"
#include "shard/pool_shape.h"

namespace kvtier {

v1::ModelSpec TransferSpec() { return TestModelSpec(kTransferDType); }

int64_t TransferBlockBytes() {
  return PoolShapeFor(TransferSpec(), HeadRangeForSlot(TransferSpec(), kTransferSlot))
      .block_bytes();
}

std::unique_ptr<v1::BlockTransferService::Stub> TransferStub(const std::string& address) {
  return v1::BlockTransferService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

v1::PullBlocksRequest PullRequest(const std::string& source_address,
                                  const std::vector<int32_t>& blocks, v1::Transport transport) {
  v1::PullBlocksRequest request;
  *request.mutable_model() = TransferSpec().id();
  request.set_slot(kTransferSlot);
  request.set_source_address(source_address);
  for (int32_t block : blocks) request.add_block_ids(block);
  request.set_transport(transport);
  return request;
}

grpc::Status Pull(const TestShard& destination, const v1::PullBlocksRequest& request,
                  v1::PullBlocksResponse* response, absl::Duration timeout) {
  v1::PullBlocksResponse ignored;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return TransferStub(destination.server->address())
      ->PullBlocks(&context, request, response != nullptr ? response : &ignored);
}

PoolContents ReadPool(const TestShard& shard) {
  v1::ReadBlocksRequest request;
  *request.mutable_range()->mutable_model() = TransferSpec();
  request.mutable_range()->set_slot(kTransferSlot);
  for (int32_t block = 0; block < kTestBlocks; ++block) request.add_block_ids(block);
  grpc::ClientContext context;
  context.set_deadline(TestDeadline());
  auto reader = TransferStub(shard.server->address())->ReadBlocks(&context, request);
  PoolContents contents;
  v1::ReadBlocksResponse data;
  while (reader->Read(&data)) {
    contents[{data.block_id(), data.layer()}] = BlockLayer{data.k(), data.v()};
  }
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(contents.size(), size_t{kTestBlocks} * kTestLayers);
  return contents;
}

void BlockTransferFixture::StartShards(const PoolDevice& source_device,
                                       const PoolDevice& destination_device) {
  ShardServerOptions options = TestShardOptions();
  options.device = source_device;
  ASSERT_NO_FATAL_FAILURE(StartShard(TestRange(TransferSpec(), kTransferSlot), &source_, options));
  options.device = destination_device;
  ASSERT_NO_FATAL_FAILURE(
      StartShard(TestRange(TransferSpec(), kTransferSlot), &destination_, options));
}

void BlockTransferFixture::StartShard(const v1::HostedRange& range, TestShard* shard,
                                      const ShardServerOptions& options) {
  StartTestShard(key_, {range}, options, shard);
}

PoolContents BlockTransferFixture::WriteRandomBlocks(TestShard& shard,
                                                     const std::vector<int32_t>& blocks) {
  const int tokens = static_cast<int>(blocks.size()) * kTestBlockSize;
  const int64_t block_bytes = TransferBlockBytes();
  const v1::BlockLease lease = SignedLease(key_, TestModelId(), blocks, {1, 1});
  std::vector<v1::StepRequest> step =
      ZeroStep(TransferSpec(), kTransferSlot, lease, tokens, tokens);
  PoolContents written;
  for (v1::StepRequest& request : step) {
    v1::LayerTensors& layer = *request.mutable_layer();
    for (std::string* tensor : {layer.mutable_k(), layer.mutable_v()}) {
      for (char& byte : *tensor) byte = static_cast<char>(rng_());
    }
    for (size_t i = 0; i < blocks.size(); ++i) {
      written[{blocks[i], layer.layer()}] =
          BlockLayer{layer.k().substr(i * block_bytes, block_bytes),
                     layer.v().substr(i * block_bytes, block_bytes)};
    }
  }
  const StepOutcome outcome = shard.client->Send(step);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  return written;
}

void BlockTransferFixture::ExpectPullCopies(const std::vector<int32_t>& blocks,
                                            v1::Transport transport, v1::Transport expected) {
  const PoolContents source = ReadPool(source_);
  const PoolContents before = ReadPool(destination_);
  const grpc::Status status = Pull(
      destination_, PullRequest(source_.server->address(), blocks, transport), &last_response_);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(last_response_.transport(), expected);
  EXPECT_EQ(last_response_.blocks(), static_cast<int>(blocks.size()));
  EXPECT_EQ(last_response_.bytes(),
            static_cast<int64_t>(blocks.size()) * kTestLayers * 2 * TransferBlockBytes());

  const PoolContents after = ReadPool(destination_);
  for (const auto& [where, contents] : after) {
    SCOPED_TRACE(absl::StrCat("block ", where.first, " layer ", where.second));
    const bool pulled = std::find(blocks.begin(), blocks.end(), where.first) != blocks.end();
    EXPECT_TRUE(contents == (pulled ? source : before).at(where));
  }
  EXPECT_TRUE(ReadPool(source_) == source);
}

void BlockTransferFixture::ExpectDestinationServes() {
  WriteRandomBlocks(destination_, {30});
  WriteRandomBlocks(source_, {31});
  ExpectPullCopies({31}, v1::TRANSPORT_GRPC, v1::TRANSPORT_GRPC);
}

}  // namespace kvtier
