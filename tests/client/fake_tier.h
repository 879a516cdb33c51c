// Test support for the client library: a FakeSessionService and two FakeShards serving one
// small model, a Client connected to them, and random per-layer tensors.
#ifndef KVTIER_TESTS_CLIENT_FAKE_TIER_H_
#define KVTIER_TESTS_CLIENT_FAKE_TIER_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/client.h"
#include "client/session.h"
#include "client/step.h"
#include "kvtier/v1/common.pb.h"
#include "tests/client/fake_session_service.h"
#include "tests/client/fake_shard.h"

namespace kvtier::test {

inline constexpr char kTenant[] = "tenant-a";
// Distinct, so a test can tell which deadline a call carried.
inline constexpr absl::Duration kControlDeadline = absl::Seconds(37);
inline constexpr absl::Duration kStepDeadline = absl::Seconds(300);
// NOTE: gRPC sends a deadline as a timeout rounded up to a few significant digits, so a server
// may see up to this much more time than the client set.
inline constexpr absl::Duration kDeadlineRounding = absl::Seconds(1);

// "toy": 2 layers, 3 KV heads, 6 query heads (GQA 2), head_dim 4, fp32, 4-token blocks, over
// two head ranges: KV heads [0, 2) on slot 0 and [2, 3) on slot 1 (uneven on purpose).
v1::ModelSpec ToyModel();

struct FakeTier {
  FakeTier();

  // The client options for this tier: kControlDeadline, kStepDeadline.
  ClientOptions options() const;
  std::unique_ptr<Client> Connect() const;

  const v1::ModelSpec model;
  FakeShard shards[2];
  FakeSessionService coordinator;
};

// One layer's fp32 tensors for a step of `num_tokens` tokens: q [T][6][4], k and v [T][3][4],
// fresh random values; out sized like q.
struct LayerInputs {
  std::vector<float> q, k, v, out;
};
LayerInputs RandomLayer(const v1::ModelSpec& model, int64_t num_tokens, std::mt19937_64& rng);

absl::Span<const char> Bytes(const std::vector<float>& tensor);
absl::Span<char> MutableBytes(std::vector<float>& tensor);

// The bytes of heads [begin, end) of every row of `tensor` ([rows][heads][head_dim] fp32), row
// by row: what a shard holding those heads must receive.
std::string HeadSlice(const std::vector<float>& tensor, int heads, int head_dim, int begin,
                      int end);

// Attend on every layer with fresh random tensors, then Finish; the first error.
absl::Status RunStep(Step& step, const v1::ModelSpec& model, std::mt19937_64& rng);

// Extend `session` by `tokens` and step it alone; the first error.
absl::Status ExtendAndStep(Session& session, const std::vector<int32_t>& tokens,
                           std::mt19937_64& rng);

// A seed the caller prints with SCOPED_TRACE.
uint64_t FreshSeed();

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_CLIENT_FAKE_TIER_H_
