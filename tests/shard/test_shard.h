// The model the shard tests serve, and a shard started for a test: a ShardServer on an
// ephemeral 127.0.0.1 port, registered with its own FakeCoordinator, and a client for it.
#ifndef KVTIER_TESTS_SHARD_TEST_SHARD_H_
#define KVTIER_TESTS_SHARD_TEST_SHARD_H_

#include <memory>
#include <string>
#include <vector>

#include "cache/kv/dtype.h"
#include "kvtier/v1/common.pb.h"
#include "kvtier/v1/registry.pb.h"
#include "shard/shard_server.h"
#include "tests/shard/fake_coordinator.h"
#include "tests/shard/step_client.h"

namespace kvtier {

// Model "m": 2 layers, 3 KV heads over 2 slots (2 + 1: uneven), GQA group 2, head_dim 64,
// blocks of 4 tokens, 32 blocks.
inline constexpr char kTestModel[] = "m";
inline constexpr int kTestLayers = 2;
inline constexpr int kTestKvHeads = 3;
inline constexpr int kTestQHeads = 6;
inline constexpr int kTestHeadDim = 64;
inline constexpr int kTestBlockSize = 4;
inline constexpr int kTestBlocks = 32;
inline constexpr int kTestShards = 2;

v1::ModelSpec TestModelSpec(DType dtype);
// The test model's id: kTestModel, version "1".
v1::ModelId TestModelId();

// Slot `slot` of `spec`, as a coordinator assigns it (incarnation left to the coordinator).
v1::HostedRange TestRange(const v1::ModelSpec& spec, int slot);

// Options for a test shard: 127.0.0.1:0, two attention threads, quick registration retries.
ShardServerOptions TestShardOptions();

// A step of one sequence over `lease` on `slot` of `spec`, every layer's tensors sized right
// and zero.
std::vector<v1::StepRequest> ZeroStep(const v1::ModelSpec& spec, int slot,
                                      const v1::BlockLease& lease, int context_len,
                                      int num_new_tokens);
// The same for a step of `sequences`, in row order.
std::vector<v1::StepRequest> ZeroStep(const v1::ModelSpec& spec, int slot,
                                      const std::vector<v1::SequenceStep>& sequences);

struct TestShard {
  std::unique_ptr<FakeCoordinator> coordinator;
  std::unique_ptr<ShardServer> server;
  std::unique_ptr<StepClient> client;
};

// Starts a coordinator that assigns `ranges` with `lease_key`, then a shard with `options`
// (coordinator_address filled in) and waits for it to register. Fails the test (fatally)
// otherwise.
void StartTestShard(const std::string& lease_key, std::vector<v1::HostedRange> ranges,
                    ShardServerOptions options, TestShard* shard);

}  // namespace kvtier

#endif  // KVTIER_TESTS_SHARD_TEST_SHARD_H_
