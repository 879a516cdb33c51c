// Metrics through a real tier (LocalTier: a coordinator and 2 shards over gRPC, counting into
// one served Metrics, scraped over HTTP as Prometheus does): the coordinator's families agree
// with its own stats after a random workload, with tenant labels only for the configured
// tenants; the shards count exactly the layers and K/V bytes the steps sent, which of those
// layers went to the step executor (none of these small ones by default, all of them with an
// inline limit of 0, their attention still exact), and the streams an error ended; every
// unary call is timed by method and status code, counted before its status reaches the caller,
// with names the server does not have folded into "unknown"; a metrics address that is
// malformed or taken is refused, naming the field.
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "proto/wire/metrics.h"
#include "tests/metrics_scrape.h"
#include "tests/service/prefix_kv_conversation.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

constexpr int kKvHeads = 2, kQHeads = 4, kHeadDim = 32, kLayers = 2, kShards = 2;
constexpr int kBf16Bytes = 2;

class TierMetricsTest : public testing::Test {
 protected:
  void SetUp() override {
    const uint64_t seed = FreshSeed();
    std::cout << "seed " << seed << "\n";
    rng_.seed(seed);
    StartServedTier(LocalTierOptions{}.shard_inline_kv_bytes);
  }

  // A tier whose shards run layers of at most `shard_inline_kv_bytes` of K/V in the reaction.
  void StartServedTier(int64_t shard_inline_kv_bytes) {
    tier_ = {};
    metrics_.reset();
    absl::StatusOr<std::unique_ptr<Metrics>> metrics = Metrics::Serve("metrics", "127.0.0.1:0");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    LocalTierOptions options =
        FastTier(TestModel("m", kKvHeads, kQHeads, kShards, DType::kBF16, 512, kHeadDim));
    options.coordinator.tenant_quotas = {{"acme", 10'000}};
    options.coordinator.default_retention = absl::Minutes(5);
    options.metrics = metrics_.get();
    options.shard_inline_kv_bytes = shard_inline_kv_bytes;
    absl::StatusOr<Tier> tier = StartTier(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = *std::move(tier);
  }

  std::vector<MetricSample> Scrape() {
    absl::StatusOr<std::vector<MetricSample>> samples = test::Scrape(metrics_->port());
    EXPECT_TRUE(samples.ok()) << samples.status();
    return samples.value_or(std::vector<MetricSample>{});
  }

  std::vector<int32_t> RandomTokens(int count) {
    std::vector<int32_t> tokens(count);
    for (int32_t& token : tokens) token = static_cast<int32_t>(rng_() % 50000);
    return tokens;
  }

  int Uniform(int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng_); }

  // Random checked steps of two sessions; returns how many, adding their new tokens to `tokens`.
  int RunCheckedSteps(int64_t& tokens) {
    CheckedSession a = Checked(*tier_.client->OpenSession(TestModelId("m"), "acme"));
    CheckedSession b = Checked(*tier_.client->OpenSession(TestModelId("m"), "acme"));
    const int steps = Uniform(2, 6);
    for (int i = 0; i < steps; ++i) {
      const std::vector<int> new_tokens = {Uniform(1, 12), Uniform(1, 12)};
      absl::Status status = CheckedStep(*tier_.client, {&a, &b}, new_tokens, rng_);
      EXPECT_TRUE(status.ok()) << status;
      tokens += new_tokens[0] + new_tokens[1];
    }
    return steps;
  }

  std::unique_ptr<Metrics> metrics_;  // outlives the tier
  Tier tier_;
  std::mt19937_64 rng_;
};

TEST_F(TierMetricsTest, CoordinatorFamiliesAgreeWithItsStatsAndBoundTheTenants) {
  // Each tenant's conversations share a system prompt of its own; some turns are retained.
  for (const std::string tenant : {"acme", "beta", "gamma"}) {
    const std::vector<int32_t> system = RandomTokens(Uniform(4, 24));
    for (int conversation = Uniform(1, 3); conversation > 0; --conversation) {
      absl::StatusOr<std::unique_ptr<Session>> session =
          tier_.client->OpenSession(TestModelId("m"), tenant);
      ASSERT_TRUE(session.ok()) << session.status();
      PrefixKvConversation talk(*std::move(session));
      std::vector<int32_t> prompt = system;
      for (int32_t token : RandomTokens(Uniform(1, 9))) prompt.push_back(token);
      ASSERT_TRUE(talk.Say(prompt, rng_).ok());
      ASSERT_TRUE(
          talk.session().EndTurn(Uniform(0, 1) ? absl::Minutes(5) : absl::ZeroDuration()).ok());
    }
  }

  const std::vector<MetricSample> samples = Scrape();
  const v1::GetStatsResponse stats = tier_.local->coordinator().GetStats();
  ASSERT_EQ(stats.models_size(), 1);
  const v1::ModelStats& model = stats.models(0);
  std::map<std::string, v1::CacheCounters> tenants;
  for (const v1::TenantStats& tenant : model.tenants()) tenants[tenant.tenant()] = tenant.cache();
  const std::map<std::string, std::string> m = {{"model", "m"}};

  EXPECT_GT(model.cache().cached_tokens(), 0);  // the prompts were shared
  EXPECT_EQ(Sum(samples, "kvtier_prefix_lookup_tokens_total", m), model.cache().prompt_tokens());
  EXPECT_EQ(Sum(samples, "kvtier_prefix_hit_tokens_total", m), model.cache().cached_tokens());
  EXPECT_EQ(Sum(samples, "kvtier_prefix_lookup_tokens_total", {{"tenant", "acme"}}),
            tenants["acme"].prompt_tokens());
  EXPECT_EQ(Sum(samples, "kvtier_prefix_hit_tokens_total", {{"tenant", "other"}}),
            tenants["beta"].cached_tokens() + tenants["gamma"].cached_tokens());
  EXPECT_EQ(Sum(samples, "kvtier_sessions_retained_total", {{"tenant", "other"}}),
            tenants["beta"].sessions_retained() + tenants["gamma"].sessions_retained());
  for (const MetricSample& sample : samples) {
    if (sample.labels.contains("tenant")) {
      EXPECT_THAT(sample.labels.at("tenant"), testing::AnyOf("acme", "other")) << sample.name;
    }
  }
  EXPECT_EQ(Sum(samples, "kvtier_blocks", {{"state", "used"}}), model.blocks_used());
  EXPECT_EQ(Sum(samples, "kvtier_blocks", {{"state", "cached"}}), model.blocks_cached());
  EXPECT_EQ(Sum(samples, "kvtier_blocks", {{"state", "free"}}), model.blocks_free());
  EXPECT_EQ(Sum(samples, "kvtier_sessions", m), model.sessions());
  EXPECT_EQ(Sum(samples, "kvtier_blocks_cached_total", m), model.cache().blocks_cached());
  EXPECT_EQ(Sum(samples, "kvtier_model_ready", m), 1);
  EXPECT_EQ(Sum(samples, "kvtier_model_live_shards", m), kShards);
  EXPECT_EQ(Sum(samples, "kvtier_shards"), kShards);
  EXPECT_EQ(Sum(samples, "kvtier_build_info"), 1);
}

TEST_F(TierMetricsTest, ShardsCountTheLayersAndKvBytesTheStepsSent) {
  int64_t tokens = 0;
  const int steps = RunCheckedSteps(tokens);

  const std::vector<MetricSample> samples = Scrape();
  // Every shard gets every layer of every step, with the K and V of its own heads.
  EXPECT_EQ(Sum(samples, "kvtier_shard_layers_total"), steps * kLayers * kShards);
  EXPECT_EQ(Sum(samples, "kvtier_shard_step_seconds_count"), steps * kShards);
  EXPECT_GT(Sum(samples, "kvtier_shard_step_seconds_sum"), 0);
  EXPECT_EQ(Sum(samples, "kvtier_shard_kv_bytes_written_total"),
            tokens * kLayers * kKvHeads * kHeadDim * kBf16Bytes * 2);
  EXPECT_EQ(Sum(samples, "kvtier_shard_streams"), kShards);  // the client's, one per shard
  // Contexts of at most 144 tokens read at most 18 KiB a layer per shard: all run in the
  // reaction.
  EXPECT_EQ(Sum(samples, "kvtier_shard_layers_handed_off_total"), 0);
}

TEST_F(TierMetricsTest, LayersPastTheInlineLimitRunOnTheStepExecutor) {
  StartServedTier(/*shard_inline_kv_bytes=*/0);
  int64_t tokens = 0;
  const int steps = RunCheckedSteps(tokens);

  const std::vector<MetricSample> samples = Scrape();
  EXPECT_EQ(Sum(samples, "kvtier_shard_layers_total"), steps * kLayers * kShards);
  EXPECT_EQ(Sum(samples, "kvtier_shard_layers_handed_off_total"), steps * kLayers * kShards);
}

TEST_F(TierMetricsTest, CallsAreTimedByMethodAndCodeWithUnknownNamesFolded) {
  const int opened = Uniform(1, 4);
  for (int i = 0; i < opened; ++i) {
    ASSERT_TRUE(tier_.client->OpenSession(TestModelId("m"), "acme").ok());
  }
  EXPECT_FALSE(tier_.client->OpenSession(TestModelId("no-such-model"), "acme").ok());
  // A call to a method no server has, under a name a caller made up.
  grpc::GenericStub stub(
      grpc::CreateChannel(tier_.local->coordinator_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/kvtier.v1.MadeUp/Method", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);

  const std::vector<MetricSample> samples = Scrape();
  const std::string count = "kvtier_rpc_server_duration_seconds_count";
  EXPECT_EQ(
      Sum(samples, count, {{"method", "kvtier.v1.SessionService/OpenSession"}, {"code", "OK"}}),
      opened);
  EXPECT_EQ(Sum(samples, count,
                {{"method", "kvtier.v1.SessionService/OpenSession"}, {"code", "NOT_FOUND"}}),
            1);
  EXPECT_GT(Sum(samples, count, {{"method", "kvtier.v1.ShardRegistryService/RegisterShard"}}), 0);
  for (const MetricSample& sample : samples) {
    if (sample.name != count) continue;
    EXPECT_THAT(sample.labels.at("method"), testing::Not(HasSubstr("MadeUp")));
  }
  EXPECT_EQ(Sum(samples, count, {{"method", "unknown"}, {"code", "UNIMPLEMENTED"}}), 1);
  // Streams are not intercepted: the client's Step streams are not in the histogram.
  EXPECT_EQ(Sum(samples, count, {{"method", "kvtier.v1.AttentionService/Step"}}), 0);
}

TEST_F(TierMetricsTest, ShardsCountStepStreamsEndedByAnError) {
  // A layer with no plan before it: the stream ends with INVALID_ARGUMENT.
  auto stub = v1::AttentionService::NewStub(
      grpc::CreateChannel(tier_.local->shard_address(0), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->Step(&context);
  v1::StepRequest request;
  request.mutable_layer()->set_layer(0);
  ASSERT_TRUE(stream->Write(request));
  v1::StepResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const std::vector<MetricSample> samples = Scrape();
  EXPECT_EQ(Sum(samples, "kvtier_shard_stream_errors_total", {{"code", "INVALID_ARGUMENT"}}), 1);
  EXPECT_EQ(Sum(samples, "kvtier_shard_stream_errors_total"), 1);
}

TEST(MetricsServeTest, RefusesMalformedAndTakenAddressesNamingTheField) {
  absl::StatusOr<std::unique_ptr<Metrics>> malformed = Metrics::Serve("metrics_listen", "nonsense");
  EXPECT_TRUE(absl::IsInvalidArgument(malformed.status())) << malformed.status();
  EXPECT_THAT(malformed.status().message(), HasSubstr("metrics_listen"));

  absl::StatusOr<std::unique_ptr<Metrics>> first = Metrics::Serve("metrics_listen", "127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  absl::StatusOr<std::unique_ptr<Metrics>> second = Metrics::Serve("metrics_listen", taken);
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("metrics_listen"));
  EXPECT_THAT(second.status().message(), HasSubstr(taken));
  // The first still serves.
  absl::StatusOr<std::vector<MetricSample>> samples = Scrape((*first)->port());
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(Sum(*samples, "kvtier_build_info"), 1);
}

}  // namespace
}  // namespace kvtier::test
