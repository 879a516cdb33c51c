#include "tests/service/tier_harness.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cache/kv/reference_attention.h"
#include "client/step.h"
#include "gtest/gtest.h"
#include "proto/wire/model_spec.h"
#include "shard/pool_shape.h"

namespace kvtier::test {
namespace {

// `count` random values in [-1, 1] rounded to `dtype`: appended as bytes and as exact floats.
void RandomValues(DType dtype, int64_t count, std::mt19937_64& rng, std::string* bytes,
                  std::vector<float>* values) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const size_t first = bytes->size() / DTypeSize(dtype);
  bytes->resize(bytes->size() + count * DTypeSize(dtype));
  for (int64_t i = 0; i < count; ++i) {
    StoreFromFloat(dtype, uniform(rng), bytes->data(), first + i);
    values->push_back(LoadAsFloat(dtype, bytes->data(), first + i));
  }
}

}  // namespace

v1::ModelSpec TestModel(const std::string& name, int kv_heads, int q_heads, int shards, DType dtype,
                        int num_blocks, int head_dim) {
  v1::ModelSpec model;
  *model.mutable_id() = TestModelId(name);
  model.set_num_layers(2);
  model.set_num_kv_heads(kv_heads);
  model.set_num_q_heads(q_heads);
  model.set_head_dim(head_dim);
  model.set_dtype(DTypeToProto(dtype));
  model.set_block_size(4);
  model.set_num_blocks(num_blocks);
  model.set_num_shards(shards);
  return model;
}

v1::ModelId TestModelId(const std::string& name) {
  v1::ModelId id;
  id.set_name(name);
  id.set_version("test");
  return id;
}

LocalTierOptions FastTier(const v1::ModelSpec& model) {
  LocalTierOptions options;
  options.num_shards = model.num_shards();
  options.model = model;
  options.coordinator.heartbeat_interval = absl::Milliseconds(20);
  options.coordinator.heartbeat_timeout = absl::Seconds(1);
  options.shard_capacity_bytes = int64_t{64} << 20;
  return options;
}

absl::StatusOr<Tier> StartTier(const LocalTierOptions& options) {
  Tier tier;
  absl::StatusOr<std::unique_ptr<LocalTier>> local = LocalTier::Start(options);
  if (!local.ok()) return local.status();
  tier.local = *std::move(local);
  ClientOptions client;
  client.coordinator_address = tier.local->coordinator_address();
  client.step_deadline = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<Client>> connected = Client::Connect(client);
  if (!connected.ok()) return connected.status();
  tier.client = *std::move(connected);
  return tier;
}

CheckedSession Checked(std::unique_ptr<Session> session) {
  CheckedSession checked;
  const int layers = session->model().num_layers();
  checked.session = std::move(session);
  checked.k.resize(layers);
  checked.v.resize(layers);
  return checked;
}

absl::Status CheckedStep(Client& client, const std::vector<CheckedSession*>& sessions,
                         const std::vector<int>& new_tokens, std::mt19937_64& rng) {
  const v1::ModelSpec& model = sessions[0]->session->model();
  const DType dtype = DTypeFromProto(model.dtype()).value();
  const int hq = model.num_q_heads(), hkv = model.num_kv_heads(), d = model.head_dim();

  std::vector<Session*> batch;
  for (size_t i = 0; i < sessions.size(); ++i) {
    std::vector<int32_t> tokens(new_tokens[i]);
    for (int32_t& token : tokens) token = static_cast<int32_t>(rng() % 1000);
    if (absl::Status status = sessions[i]->session->Extend(tokens).status(); !status.ok()) {
      return status;
    }
    batch.push_back(sessions[i]->session.get());
  }
  absl::StatusOr<std::unique_ptr<Step>> step = client.BeginStep(batch);
  if (!step.ok()) return step.status();

  // Histories as they will be once this step's K/V is written.
  std::vector<std::vector<std::vector<float>>> k(sessions.size()), v(sessions.size());
  for (size_t i = 0; i < sessions.size(); ++i) {
    k[i] = sessions[i]->k;
    v[i] = sessions[i]->v;
  }
  for (int layer = 0; layer < model.num_layers(); ++layer) {
    std::string q_bytes, k_bytes, v_bytes;
    std::vector<std::vector<float>> q_values(sessions.size());
    for (size_t i = 0; i < sessions.size(); ++i) {
      RandomValues(dtype, int64_t{new_tokens[i]} * hq * d, rng, &q_bytes, &q_values[i]);
      RandomValues(dtype, int64_t{new_tokens[i]} * hkv * d, rng, &k_bytes, &k[i][layer]);
      RandomValues(dtype, int64_t{new_tokens[i]} * hkv * d, rng, &v_bytes, &v[i][layer]);
    }
    std::string out(q_bytes.size(), '\0');
    if (absl::Status status = (*step)->Attend(layer, q_bytes, k_bytes, v_bytes,
                                              absl::MakeSpan(out.data(), out.size()));
        !status.ok()) {
      return status;
    }
    int64_t row = 0;  // first output element of session i
    for (size_t i = 0; i < sessions.size(); ++i) {
      ReferenceAttentionShape shape;
      shape.context_len = static_cast<int>(k[i][layer].size() / (hkv * d));
      shape.num_queries = new_tokens[i];
      shape.num_q_heads = hq;
      shape.num_kv_heads = hkv;
      shape.head_dim = d;
      const std::vector<double> want =
          ReferenceAttention(shape, q_values[i], k[i][layer], v[i][layer]);
      int mismatches = 0;
      for (size_t e = 0; e < want.size(); ++e) {
        const double got = LoadAsFloat(dtype, out.data(), row + e);
        if (std::abs(got - want[e]) > AttentionToleranceFor(dtype).Bound(want[e]) &&
            ++mismatches <= 3) {
          ADD_FAILURE() << "session " << i << " layer " << layer << " element " << e << ": got "
                        << got << ", want " << want[e];
        }
      }
      row += static_cast<int64_t>(want.size());
    }
  }
  if (absl::Status status = (*step)->Finish(); !status.ok()) return status;
  for (size_t i = 0; i < sessions.size(); ++i) {
    sessions[i]->k = std::move(k[i]);
    sessions[i]->v = std::move(v[i]);
  }
  return absl::OkStatus();
}

uint64_t FreshSeed() { return std::random_device{}(); }

}  // namespace kvtier::test
