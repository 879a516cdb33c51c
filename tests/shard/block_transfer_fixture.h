// The fixture of the block transfer suites: a source and a destination shard, each with its
// own fake coordinator, holding slot 0 of the test model on a given PoolDevice; K/V written
// with fresh random bytes through Step (the seed is in every failure's trace), pools read back
// whole through ReadBlocks, and pulls through PullBlocks, all over real gRPC.
#ifndef KVTIER_TESTS_SHARD_BLOCK_TRANSFER_FIXTURE_H_
#define KVTIER_TESTS_SHARD_BLOCK_TRANSFER_FIXTURE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cache/kv/dtype.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvtier/v1/transfer.grpc.pb.h"
#include "proto/wire/lease_signature.h"
#include "shard/pool_device.h"
#include "tests/shard/test_shard.h"

namespace kvtier {

inline constexpr DType kTransferDType = DType::kBF16;
inline constexpr int kTransferSlot = 0;  // KV heads [0, 2)

// K and V of one block of one layer, [block_size][heads][head_dim], as ReadBlocks streams them.
struct BlockLayer {
  std::string k;
  std::string v;
  bool operator==(const BlockLayer&) const = default;
};
// By (block, layer).
using PoolContents = std::map<std::pair<int32_t, int>, BlockLayer>;

v1::ModelSpec TransferSpec();
// K (or V) bytes of one block of one layer of slot kTransferSlot.
int64_t TransferBlockBytes();

std::unique_ptr<v1::BlockTransferService::Stub> TransferStub(const std::string& address);

// A pull of `blocks` of slot kTransferSlot from `source_address`.
v1::PullBlocksRequest PullRequest(const std::string& source_address,
                                  const std::vector<int32_t>& blocks,
                                  v1::Transport transport = v1::TRANSPORT_UNSPECIFIED);

// PullBlocks on `destination` with a deadline `timeout` away.
grpc::Status Pull(const TestShard& destination, const v1::PullBlocksRequest& request,
                  v1::PullBlocksResponse* response = nullptr,
                  absl::Duration timeout = absl::Seconds(20));

// Every block of `shard`'s pool, read through ReadBlocks.
PoolContents ReadPool(const TestShard& shard);

class BlockTransferFixture : public testing::Test {
 protected:
  // Starts source_ and destination_ holding slot kTransferSlot.
  void StartShards(const PoolDevice& source_device, const PoolDevice& destination_device);

  void StartShard(const v1::HostedRange& range, TestShard* shard,
                  const ShardServerOptions& options = TestShardOptions());

  // Writes fresh random K/V into every slot of `blocks` of `shard` with one prefill step, and
  // returns what it wrote.
  PoolContents WriteRandomBlocks(TestShard& shard, const std::vector<int32_t>& blocks);

  // Pulls `blocks` from source_ into destination_ with `transport`, expects it to use
  // `expected`, and expects the destination to hold exactly the source's K/V in those blocks
  // afterwards and what it held before everywhere else.
  void ExpectPullCopies(const std::vector<int32_t>& blocks, v1::Transport transport,
                        v1::Transport expected);

  // The destination still serves steps and pulls.
  void ExpectDestinationServes();

  const uint32_t seed_ = std::random_device{}();
  const testing::ScopedTrace seed_trace_{__FILE__, __LINE__, absl::StrCat("random seed ", seed_)};
  std::mt19937 rng_{seed_};
  const std::string key_ = NewLeaseKey();
  TestShard source_;
  TestShard destination_;
  v1::PullBlocksResponse last_response_;  // of ExpectPullCopies
};

}  // namespace kvtier

#endif  // KVTIER_TESTS_SHARD_BLOCK_TRANSFER_FIXTURE_H_
