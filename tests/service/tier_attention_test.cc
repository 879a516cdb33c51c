// Attention through the whole tier (coordinator, shards, client over loopback gRPC) against
// the dense reference: 1 to 4 shards, even and uneven head splits, prefill then decode,
// sessions interleaved, batched and not, and resumed from a second client.
#include <memory>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/step.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "tests/cuda_devices.h"
#include "tests/server_probe.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::IsSupersetOf;

struct Layout {
  int shards;
  int kv_heads;
  int q_heads;
  DType dtype;
};

void PrintTo(const Layout& layout, std::ostream* os) {
  *os << layout.shards << " shards, " << layout.kv_heads << "/" << layout.q_heads << " heads, "
      << DTypeName(layout.dtype);
}

// Prefill, batched decode, interleaved and mixed steps and a second turn, on a tier of model
// "m", every output checked against the reference.
void RunPrefillDecodeAndBatches(const LocalTierOptions& options) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  absl::StatusOr<Tier> tier = StartTier(options);
  ASSERT_TRUE(tier.ok()) << tier.status();
  Client& client = *tier->client;

  std::vector<CheckedSession> sessions;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        client.OpenSession(TestModelId("m"), "tenant-a");
    ASSERT_TRUE(session.ok()) << session.status();
    sessions.push_back(Checked(*std::move(session)));
  }
  CheckedSession& s0 = sessions[0];
  CheckedSession& s1 = sessions[1];
  CheckedSession& s2 = sessions[2];

  // Prefill, one session per step, lengths off and on block boundaries.
  ASSERT_TRUE(CheckedStep(client, {&s0}, {13}, rng).ok());
  ASSERT_TRUE(CheckedStep(client, {&s1}, {1}, rng).ok());
  ASSERT_TRUE(CheckedStep(client, {&s2}, {24}, rng).ok());
  // Decode, batched across sessions of different lengths.
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE(CheckedStep(client, {&s0, &s1, &s2}, {1, 1, 1}, rng).ok());
  // Interleaved: one session alone, then a batch mixing chunked prefill and decode.
  ASSERT_TRUE(CheckedStep(client, {&s1}, {1}, rng).ok());
  ASSERT_TRUE(CheckedStep(client, {&s2, &s0, &s1}, {5, 1, 7}, rng).ok());
  // A turn ends and the next continues after the retained K/V.
  ASSERT_TRUE(s0.session->EndTurn(absl::Minutes(1)).ok());
  ASSERT_TRUE(CheckedStep(client, {&s0}, {9}, rng).ok());
  ASSERT_TRUE(CheckedStep(client, {&s0, &s2}, {1, 1}, rng).ok());

  EXPECT_EQ(s0.session->context_len(), 13 + 6 + 1 + 9 + 1);
  EXPECT_EQ(s1.session->context_len(), 1 + 6 + 1 + 7);
  EXPECT_EQ(s2.session->context_len(), 24 + 6 + 5 + 1);
}

class TierAttentionTest : public ::testing::TestWithParam<Layout> {};

TEST_P(TierAttentionTest, MatchesReferenceAcrossPrefillDecodeAndBatches) {
  const Layout layout = GetParam();
  RunPrefillDecodeAndBatches(
      FastTier(TestModel("m", layout.kv_heads, layout.q_heads, layout.shards, layout.dtype)));
}

INSTANTIATE_TEST_SUITE_P(Layouts, TierAttentionTest,
                         ::testing::Values(Layout{1, 2, 8, DType::kBF16},
                                           Layout{2, 3, 6, DType::kBF16},
                                           Layout{2, 2, 8, DType::kF32},
                                           Layout{3, 4, 8, DType::kBF16},
                                           Layout{4, 6, 12, DType::kF16}));

// The same with both shards' pools on cuda:0 (head_dim 64, which the CUDA kernels cover).
TEST(TierCudaTest, ShardsOnCudaMatchReference) {
  KVTIER_SKIP_WITHOUT_CUDA_DEVICES(1);
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    SCOPED_TRACE(DTypeName(dtype));
    LocalTierOptions options =
        FastTier(TestModel("m", 4, 16, 2, dtype, /*num_blocks=*/256, /*head_dim=*/64));
    options.device.kind = PoolDevice::Kind::kCuda;
    RunPrefillDecodeAndBatches(options);
  }
}

TEST(TierServersTest, AnswerHealthChecksAndReflection) {
  absl::StatusOr<Tier> tier = StartTier(FastTier(TestModel("m", 2, 4, 2)));
  ASSERT_TRUE(tier.ok()) << tier.status();
  EXPECT_TRUE(WaitServing(tier->local->coordinator_address()).ok());
  absl::StatusOr<std::vector<std::string>> services =
      ListServices(tier->local->coordinator_address());
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, IsSupersetOf({"kvtier.v1.SessionService", "kvtier.v1.ShardRegistryService",
                                       "grpc.health.v1.Health"}));
  for (int i = 0; i < tier->local->num_shards(); ++i) {
    EXPECT_TRUE(WaitServing(tier->local->shard_address(i)).ok());
    services = ListServices(tier->local->shard_address(i));
    ASSERT_TRUE(services.ok()) << services.status();
    EXPECT_THAT(*services, IsSupersetOf({"kvtier.v1.AttentionService", "grpc.health.v1.Health"}));
  }
}

TEST(TierResumeTest, SecondClientContinuesSession) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937_64 rng(seed);
  absl::StatusOr<Tier> tier = StartTier(FastTier(TestModel("m", 3, 6, 2)));
  ASSERT_TRUE(tier.ok()) << tier.status();

  absl::StatusOr<std::unique_ptr<Session>> opened =
      tier->client->OpenSession(TestModelId("m"), "tenant-a");
  ASSERT_TRUE(opened.ok()) << opened.status();
  CheckedSession first = Checked(*std::move(opened));
  ASSERT_TRUE(CheckedStep(*tier->client, {&first}, {10}, rng).ok());
  ASSERT_TRUE(CheckedStep(*tier->client, {&first}, {1}, rng).ok());
  ASSERT_TRUE(first.session->EndTurn().ok());

  ClientOptions options = tier->client->options();
  absl::StatusOr<std::unique_ptr<Client>> second_client = Client::Connect(options);
  ASSERT_TRUE(second_client.ok());
  EXPECT_EQ((*second_client)->ResumeSession(first.session->id(), "tenant-b").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<std::unique_ptr<Session>> resumed =
      (*second_client)->ResumeSession(first.session->id(), "tenant-a");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->context_len(), 11);

  CheckedSession second = Checked(*std::move(resumed));
  second.k = first.k;
  second.v = first.v;
  ASSERT_TRUE(CheckedStep(**second_client, {&second}, {1}, rng).ok());
  ASSERT_TRUE(CheckedStep(**second_client, {&second}, {6}, rng).ok());
  ASSERT_TRUE(second.session->EndTurn().ok());

  // The first client was fenced off when the second took over: a step on the blocks the
  // second has written is refused by the shards, and it cannot commit.
  absl::Status zombie = CheckedStep(*tier->client, {&first}, {1}, rng);
  EXPECT_EQ(zombie.code(), absl::StatusCode::kPermissionDenied) << zombie;
  const absl::Status superseded = first.session->EndTurn();
  EXPECT_EQ(superseded.code(), absl::StatusCode::kAborted) << superseded;
  EXPECT_EQ(ReasonOf(superseded), v1::ERROR_REASON_WRITER_SUPERSEDED) << superseded;
  // What the second client wrote is intact.
  ASSERT_TRUE(CheckedStep(**second_client, {&second}, {2}, rng).ok());
}

}  // namespace
}  // namespace kvtier::test
