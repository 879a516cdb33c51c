// Test support for the tier: a LocalTier with fast heartbeats, and sessions that remember the
// K/V they wrote so every step's attention output can be checked against the dense reference.
#ifndef KVTIER_TESTS_SERVICE_TIER_HARNESS_H_
#define KVTIER_TESTS_SERVICE_TIER_HARNESS_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cache/kv/dtype.h"
#include "client/client.h"
#include "client/session.h"
#include "kvtier/v1/common.pb.h"
#include "service/local/local_tier.h"

namespace kvtier::test {

// A small model: 2 layers, head_dim 32 unless given, block 4 tokens (so steps cross blocks
// often).
v1::ModelSpec TestModel(const std::string& name, int kv_heads, int q_heads, int shards,
                        DType dtype = DType::kBF16, int num_blocks = 256, int head_dim = 32);

// The id of a TestModel named `name`.
v1::ModelId TestModelId(const std::string& name);

// Heartbeats every 20 ms; a shard is dropped after 1 s of silence (short enough for the crash
// tests, long enough that a loaded CI machine does not drop a live shard).
LocalTierOptions FastTier(const v1::ModelSpec& model);

struct Tier {
  std::unique_ptr<LocalTier> local;
  std::unique_ptr<Client> client;
};
absl::StatusOr<Tier> StartTier(const LocalTierOptions& options);

// A session with the exact fp32 values of the K/V it wrote, per layer [C][kv_heads][head_dim].
struct CheckedSession {
  std::unique_ptr<Session> session;
  std::vector<std::vector<float>> k, v;
};
CheckedSession Checked(std::unique_ptr<Session> session);

// One step over `sessions`: new_tokens[i] random tokens for session i, random q/k/v per layer
// (in the model dtype), every layer's output compared with ReferenceAttention over each
// session's whole history. Returns the tier's first error (the histories are then left as
// they were); a wrong number is a test failure.
absl::Status CheckedStep(Client& client, const std::vector<CheckedSession*>& sessions,
                         const std::vector<int>& new_tokens, std::mt19937_64& rng);

// A seed printed through SCOPED_TRACE by the caller.
uint64_t FreshSeed();

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_SERVICE_TIER_HARNESS_H_
