#include "tests/client/fake_tier.h"

#include <utility>

namespace kvtier::test {
namespace {

v1::ShardEndpoint Endpoint(int slot, const std::string& address, int kv_head_begin,
                           int kv_head_end) {
  v1::ShardEndpoint endpoint;
  endpoint.set_slot(slot);
  endpoint.set_address(address);
  endpoint.mutable_heads()->set_kv_head_begin(kv_head_begin);
  endpoint.mutable_heads()->set_kv_head_end(kv_head_end);
  endpoint.set_incarnation(7 + slot);
  return endpoint;
}

std::vector<float> RandomFloats(int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<float> floats(count);
  for (float& x : floats) x = value(rng);
  return floats;
}

}  // namespace

v1::ModelSpec ToyModel() {
  v1::ModelSpec model;
  model.mutable_id()->set_name("toy");
  model.mutable_id()->set_version("1");
  model.set_num_layers(2);
  model.set_num_kv_heads(3);
  model.set_num_q_heads(6);
  model.set_head_dim(4);
  model.set_dtype(v1::DTYPE_FP32);
  model.set_block_size(4);
  model.set_num_blocks(64);
  model.set_num_shards(2);
  return model;
}

FakeTier::FakeTier()
    : model(ToyModel()),
      coordinator(
          model, {Endpoint(0, shards[0].address(), 0, 2), Endpoint(1, shards[1].address(), 2, 3)}) {
}

ClientOptions FakeTier::options() const {
  ClientOptions options;
  options.coordinator_address = coordinator.address();
  options.control_deadline = kControlDeadline;
  options.step_deadline = kStepDeadline;
  return options;
}

std::unique_ptr<Client> FakeTier::Connect() const { return *Client::Connect(options()); }

LayerInputs RandomLayer(const v1::ModelSpec& model, int64_t num_tokens, std::mt19937_64& rng) {
  const int64_t q_count = num_tokens * model.num_q_heads() * model.head_dim();
  const int64_t kv_count = num_tokens * model.num_kv_heads() * model.head_dim();
  LayerInputs layer;
  layer.q = RandomFloats(q_count, rng);
  layer.k = RandomFloats(kv_count, rng);
  layer.v = RandomFloats(kv_count, rng);
  layer.out.assign(q_count, 0.0f);
  return layer;
}

absl::Span<const char> Bytes(const std::vector<float>& tensor) {
  return {reinterpret_cast<const char*>(tensor.data()), tensor.size() * sizeof(float)};
}

absl::Span<char> MutableBytes(std::vector<float>& tensor) {
  return {reinterpret_cast<char*>(tensor.data()), tensor.size() * sizeof(float)};
}

std::string HeadSlice(const std::vector<float>& tensor, int heads, int head_dim, int begin,
                      int end) {
  std::vector<float> slice;
  const size_t rows = tensor.size() / (heads * head_dim);
  for (size_t row = 0; row < rows; ++row) {
    for (int head = begin; head < end; ++head) {
      for (int d = 0; d < head_dim; ++d) {
        slice.push_back(tensor[(row * heads + head) * head_dim + d]);
      }
    }
  }
  absl::Span<const char> bytes = Bytes(slice);
  return std::string(bytes.data(), bytes.size());
}

absl::Status RunStep(Step& step, const v1::ModelSpec& model, std::mt19937_64& rng) {
  for (int layer = 0; layer < model.num_layers(); ++layer) {
    LayerInputs tensors = RandomLayer(model, step.num_tokens(), rng);
    if (absl::Status status = step.Attend(layer, Bytes(tensors.q), Bytes(tensors.k),
                                          Bytes(tensors.v), MutableBytes(tensors.out));
        !status.ok()) {
      return status;
    }
  }
  return step.Finish();
}

absl::Status ExtendAndStep(Session& session, const std::vector<int32_t>& tokens,
                           std::mt19937_64& rng) {
  if (absl::Status status = session.Extend(tokens).status(); !status.ok()) return status;
  absl::StatusOr<std::unique_ptr<Step>> step = session.BeginStep();
  if (!step.ok()) return step.status();
  return RunStep(**step, session.model(), rng);
}

uint64_t FreshSeed() { return std::random_device{}(); }

}  // namespace kvtier::test
