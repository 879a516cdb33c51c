// The tier side of the kvtier-generate tests: the tier model matching a ToyTransformer's
// geometry, and a fixture that starts a LocalTier (2 shards on loopback) serving it, with a
// client connected.
#ifndef KVTIER_TESTS_CLIENT_GENERATE_TOY_TIER_H_
#define KVTIER_TESTS_CLIENT_GENERATE_TOY_TIER_H_

#include <memory>

#include "client/client.h"
#include "client/generate/toy_transformer.h"
#include "gtest/gtest.h"
#include "service/local/local_tier.h"

namespace kvtier {

inline v1::ModelSpec TierModelFor(const ToyTransformerConfig& config) {
  v1::ModelSpec model;
  model.mutable_id()->set_name("toy");
  model.set_num_layers(config.num_layers);
  model.set_num_q_heads(config.num_q_heads);
  model.set_num_kv_heads(config.num_kv_heads);
  model.set_head_dim(config.head_dim);
  model.set_dtype(v1::DTYPE_FP32);
  model.set_block_size(16);
  model.set_num_blocks(64);
  model.set_num_shards(2);
  return model;
}

class ToyTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalTierOptions options;
    options.model = TierModelFor(config_);
    options.num_shards = 2;
    absl::StatusOr<std::unique_ptr<LocalTier>> tier = LocalTier::Start(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = *std::move(tier);
    client_ = NewClient();
  }

  std::unique_ptr<Client> NewClient() const {
    ClientOptions client;
    client.coordinator_address = tier_->coordinator_address();
    return *Client::Connect(client);
  }

  ToyTransformerConfig config_;  // the default model, the one kvtier-generate runs
  std::unique_ptr<LocalTier> tier_;
  std::unique_ptr<Client> client_;
};

}  // namespace kvtier

#endif  // KVTIER_TESTS_CLIENT_GENERATE_TOY_TIER_H_
