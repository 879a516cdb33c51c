#include "tests/shard/test_shard.h"

#include <utility>

#include "gtest/gtest.h"
#include "proto/wire/layer_shapes.h"
#include "proto/wire/model_spec.h"
#include "service/head_placement.h"
#include "shard/pool_shape.h"

namespace kvtier {

v1::ModelId TestModelId() {
  v1::ModelId id;
  id.set_name(kTestModel);
  id.set_version("1");
  return id;
}

v1::ModelSpec TestModelSpec(DType dtype) {
  v1::ModelSpec spec;
  *spec.mutable_id() = TestModelId();
  spec.set_num_layers(kTestLayers);
  spec.set_num_kv_heads(kTestKvHeads);
  spec.set_num_q_heads(kTestQHeads);
  spec.set_head_dim(kTestHeadDim);
  spec.set_dtype(DTypeToProto(dtype));
  spec.set_block_size(kTestBlockSize);
  spec.set_num_blocks(kTestBlocks);
  spec.set_num_shards(kTestShards);
  return spec;
}

v1::HostedRange TestRange(const v1::ModelSpec& spec, int slot) {
  v1::HostedRange range;
  *range.mutable_model() = spec;
  range.set_slot(slot);
  *range.mutable_heads() = HeadRangeForSlot(spec, slot);
  return range;
}

std::vector<v1::StepRequest> ZeroStep(const v1::ModelSpec& spec, int slot,
                                      const v1::BlockLease& lease, int context_len,
                                      int num_new_tokens) {
  v1::SequenceStep sequence;
  *sequence.mutable_lease() = lease;
  sequence.set_context_len(context_len);
  sequence.set_num_new_tokens(num_new_tokens);
  return ZeroStep(spec, slot, {sequence});
}

std::vector<v1::StepRequest> ZeroStep(const v1::ModelSpec& spec, int slot,
                                      const std::vector<v1::SequenceStep>& sequences) {
  v1::StepPlan plan;
  *plan.mutable_model() = spec.id();
  plan.set_slot(slot);
  int num_new_tokens = 0;
  for (const v1::SequenceStep& sequence : sequences) {
    *plan.add_sequences() = sequence;
    num_new_tokens += sequence.num_new_tokens();
  }
  *plan.mutable_shapes() = LayerShapesFor(spec, HeadRangeForSlot(spec, slot), num_new_tokens);
  const size_t kv_bytes = size_t{1} * num_new_tokens * NumHeads(HeadRangeForSlot(spec, slot)) *
                          spec.head_dim() * DTypeBytes(spec.dtype());
  std::vector<v1::LayerTensors> layers(spec.num_layers());
  for (int layer = 0; layer < spec.num_layers(); ++layer) {
    layers[layer].set_layer(layer);
    layers[layer].set_q(std::string(kv_bytes * GqaGroupSize(spec), '\0'));
    layers[layer].set_k(std::string(kv_bytes, '\0'));
    layers[layer].set_v(std::string(kv_bytes, '\0'));
  }
  return StepRequests(plan, layers);
}

ShardServerOptions TestShardOptions() {
  ShardServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.capacity_bytes = int64_t{256} << 20;
  options.attention_threads = 2;
  options.registration_initial_backoff = absl::Milliseconds(10);
  options.registration_max_backoff = absl::Milliseconds(50);
  return options;
}

void StartTestShard(const std::string& lease_key, std::vector<v1::HostedRange> ranges,
                    ShardServerOptions options, TestShard* shard) {
  shard->coordinator = std::make_unique<FakeCoordinator>(lease_key, std::move(ranges));
  options.coordinator_address = shard->coordinator->address();
  absl::StatusOr<std::unique_ptr<ShardServer>> server = ShardServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  shard->server = *std::move(server);
  ASSERT_TRUE(shard->server->WaitUntilRegistered(absl::Seconds(10)));
  shard->client = std::make_unique<StepClient>(shard->server->address());
}

}  // namespace kvtier
