// Block transfers with CUDA pools, which need GPUs: each test skips, saying why, where this
// build or machine lacks what it needs (CI builds them all the same).
//
// One GPU: two shards on the same GPU copy over gRPC (AUTO never puts two NCCL ranks on one
// device; an explicit NCCL request is refused); an NCCL rank whose peer never joins gives up
// at its deadline, or when cancelled, and aborts its communicator, both on its own and as a
// source shard serving SendBlocksNccl. Two GPUs: AUTO copies over NCCL between shards on
// distinct devices, byte for byte.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "cache/kv/cuda/cuda_kv_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/model_spec.h"
#include "service/head_placement.h"
#include "shard/nccl_block_transfer.h"
#include "shard/pool_shape.h"
#include "tests/cuda_devices.h"
#include "tests/shard/block_transfer_fixture.h"

namespace kvtier {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

PoolDevice Cuda(int ordinal) {
  return PoolDevice{.kind = PoolDevice::Kind::kCuda, .cuda_ordinal = ordinal};
}

// Why this machine cannot run a test that needs `gpus` GPUs (and NCCL when `nccl`); empty when
// it can.
std::string Missing(int gpus, bool nccl) {
  const std::string missing = test::MissingCudaDevices(gpus);
  if (missing.empty() && nccl && !NcclTransferBuilt()) return "needs NCCL, and this build has none";
  return missing;
}

class BlockTransferGpuTest : public BlockTransferFixture {};

TEST_F(BlockTransferGpuTest, PoolsOnOneGpuCopyOverGrpc) {
  if (const std::string why = Missing(1, false); !why.empty()) GTEST_SKIP() << why;
  ASSERT_NO_FATAL_FAILURE(StartShards(Cuda(0), Cuda(0)));
  WriteRandomBlocks(source_, {2, 3, 7});
  WriteRandomBlocks(destination_, {8});
  ASSERT_NO_FATAL_FAILURE(
      ExpectPullCopies({7, 2, 3}, v1::TRANSPORT_UNSPECIFIED, v1::TRANSPORT_GRPC));
  EXPECT_THAT(
      last_response_.transport_reason(),
      AnyOf(HasSubstr("and NCCL needs a distinct GPU per rank"), HasSubstr("built without NCCL")));

  const grpc::Status nccl =
      Pull(destination_, PullRequest(source_.server->address(), {2}, v1::TRANSPORT_NCCL));
  EXPECT_EQ(nccl.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << nccl.error_message();
  EXPECT_THAT(nccl.error_message(), HasSubstr("transport: NCCL requested, but"));
}

TEST_F(BlockTransferGpuTest, NcclRankWithoutItsPeerGivesUpAtTheDeadlineOrWhenCancelled) {
  if (const std::string why = Missing(1, true); !why.empty()) GTEST_SKIP() << why;
  absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCudaKvPool(
      PoolShapeFor(TransferSpec(), HeadRangeForSlot(TransferSpec(), kTransferSlot)),
      CudaKvPoolOptions{.device = 0});
  ASSERT_TRUE(pool.ok()) << pool.status();
  const std::vector<int32_t> blocks = {1, 2};

  absl::StatusOr<std::string> unique_id = NewNcclUniqueId();
  ASSERT_TRUE(unique_id.ok()) << unique_id.status();
  const absl::Status timed_out = ReceiveBlocksOverNccl(
      **pool, blocks, *unique_id, absl::Now() + absl::Seconds(2), [] { return false; });
  EXPECT_EQ(timed_out.code(), absl::StatusCode::kDeadlineExceeded) << timed_out;
  EXPECT_THAT(timed_out.message(), HasSubstr("ncclCommInitRankConfig"));

  unique_id = NewNcclUniqueId();
  ASSERT_TRUE(unique_id.ok()) << unique_id.status();
  const absl::Time cancel_at = absl::Now() + absl::Seconds(1);
  const absl::Status cancelled =
      SendBlocksOverNccl(**pool, blocks, *unique_id, absl::Now() + absl::Seconds(60),
                         [cancel_at] { return absl::Now() >= cancel_at; });
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kCancelled) << cancelled;
}

TEST_F(BlockTransferGpuTest, SourceShardGivesUpOnAnNcclPeerThatNeverJoins) {
  if (const std::string why = Missing(1, true); !why.empty()) GTEST_SKIP() << why;
  ASSERT_NO_FATAL_FAILURE(StartShards(Cuda(0), Cuda(0)));
  absl::StatusOr<std::string> unique_id = NewNcclUniqueId();
  ASSERT_TRUE(unique_id.ok()) << unique_id.status();
  v1::SendBlocksNcclRequest request;
  *request.mutable_range()->mutable_model() = TransferSpec();
  request.mutable_range()->set_slot(kTransferSlot);
  request.add_block_ids(4);
  request.set_nccl_unique_id(*unique_id);
  v1::SendBlocksNcclResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  const grpc::Status status =
      TransferStub(source_.server->address())->SendBlocksNccl(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  // The source serves on.
  WriteRandomBlocks(source_, {5});
  ASSERT_NO_FATAL_FAILURE(ExpectPullCopies({5}, v1::TRANSPORT_GRPC, v1::TRANSPORT_GRPC));
}

TEST_F(BlockTransferGpuTest, PoolsOnTwoGpusCopyOverNccl) {
  if (const std::string why = Missing(2, true); !why.empty()) GTEST_SKIP() << why;
  ASSERT_NO_FATAL_FAILURE(StartShards(Cuda(0), Cuda(1)));
  WriteRandomBlocks(source_, {0, 1, 2, 5, 6, 31});
  WriteRandomBlocks(destination_, {3, 4});
  ASSERT_NO_FATAL_FAILURE(
      ExpectPullCopies({31, 0, 1, 2, 6}, v1::TRANSPORT_UNSPECIFIED, v1::TRANSPORT_NCCL));
  EXPECT_EQ(last_response_.transport_reason(), "");
  ASSERT_NO_FATAL_FAILURE(ExpectPullCopies({5}, v1::TRANSPORT_NCCL, v1::TRANSPORT_NCCL));
  ASSERT_NO_FATAL_FAILURE(ExpectPullCopies({3}, v1::TRANSPORT_GRPC, v1::TRANSPORT_GRPC));
}

}  // namespace
}  // namespace kvtier
