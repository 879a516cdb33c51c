// Model versions, their retirement, and tenant- and model-wide invalidation in the
// Coordinator, called directly with its shards faked (ControlPlaneTest): versions of one name
// keep one attention geometry and never share blocks; IMMEDIATE retirement and model
// invalidation revoke every block on every shard; DRAIN lets active turns finish; the
// counters add up to what the calls returned.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "kvtier/v1/admin.pb.h"
#include "proto/wire/error_reason.h"
#include "shard/pool_shape.h"
#include "tests/service/control_plane_fixture.h"

namespace kvtier::test {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

class ModelVersionsTest : public ControlPlaneTest {
 protected:
  // Registers version `version` of "m" (expected to succeed) and reports it ready.
  void AddVersion(const std::string& version) {
    ASSERT_TRUE(coordinator_.RegisterModel(Model(version)).ok());
    harness_.Advance(absl::Seconds(1));
  }

  absl::Status OpenStatus(const v1::ModelId& model) {
    return SessionDriver::Open(coordinator_, model, "t").status();
  }
};

TEST_F(ModelVersionsTest, AVersionOfTheSameGeometryRegistersAndBothOpenSessions) {
  v1::ModelSpec v2 = Model("v2");
  v2.set_num_blocks(32);  // capacity may differ
  ASSERT_TRUE(coordinator_.RegisterModel(v2).ok());
  harness_.Advance(absl::Seconds(1));
  EXPECT_EQ(Stats().models_size(), 2);
  EXPECT_TRUE(OpenStatus(ModelId()).ok());
  EXPECT_TRUE(OpenStatus(ModelId("v2")).ok()) << OpenStatus(ModelId("v2"));
}

TEST_F(ModelVersionsTest, AVersionOfAnotherGeometryIsRefusedNamingTheField) {
  const std::vector<std::pair<std::string, std::function<void(v1::ModelSpec&)>>> changes = {
      {"num_kv_heads", [](v1::ModelSpec& m) { m.set_num_kv_heads(4); }},
      {"head_dim", [](v1::ModelSpec& m) { m.set_head_dim(64); }},
      {"dtype", [](v1::ModelSpec& m) { m.set_dtype(DTypeToProto(DType::kF16)); }},
      {"block_size", [](v1::ModelSpec& m) { m.set_block_size(8); }},
      {"num_layers", [](v1::ModelSpec& m) { m.set_num_layers(3); }},
  };
  for (const auto& [field, change] : changes) {
    v1::ModelSpec model = Model("v2");
    change(model);
    absl::StatusOr<v1::ModelSpec> registered = coordinator_.RegisterModel(model);
    EXPECT_EQ(registered.status().code(), absl::StatusCode::kFailedPrecondition) << field;
    EXPECT_THAT(registered.status().message(), HasSubstr(field));
  }
  EXPECT_EQ(Stats().models_size(), 1);
}

TEST_F(ModelVersionsTest, BlocksNeverMatchAcrossVersions) {
  AddVersion("v2");
  const std::vector<int32_t> prompt = RandomTokens(14);
  SessionDriver session = Prefilled(prompt);
  EXPECT_EQ(CachedFor(prompt, "t", ModelId("v2")), 0);
  EXPECT_EQ(CachedFor(prompt, "t", ModelId()), 3 * kBlockSize);
}

TEST_F(ModelVersionsTest, RetiringAtOnceInvalidatesTheVersionAndRemovesIt) {
  AddVersion("v2");
  SessionDriver old_session = Prefilled(RandomTokens(10));
  SessionDriver new_session = Prefilled(RandomTokens(10), "t", ModelId("v2"));
  shards().ClearCalls();

  absl::StatusOr<v1::RetireModelResponse> retired = Retire(ModelId(), v1::RETIRE_MODE_IMMEDIATE);
  ASSERT_TRUE(retired.ok()) << retired.status();
  EXPECT_EQ(retired->result().sessions(), 1);
  EXPECT_EQ(retired->result().blocks(), kNumBlocks);
  EXPECT_EQ(retired->result().shards_acknowledged(), 2);
  for (const auto& call : shards().revokes()) {
    EXPECT_TRUE(MessageDifferencer::Equals(call.request.model(), ModelId()));
    EXPECT_EQ(call.request.blocks_size(), kNumBlocks);
  }

  EXPECT_TRUE(IsInvalidated(old_session.Commit({1}).status()));
  EXPECT_EQ(OpenStatus(ModelId()).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(new_session.Commit({1}).ok());
  const v1::GetStatsResponse stats = Stats();
  ASSERT_EQ(stats.models_size(), 1);
  EXPECT_EQ(stats.models(0).model().id().version(), "v2");
  EXPECT_EQ(stats.tier().models_retired(), 1);
  EXPECT_EQ(stats.tier().sessions_invalidated(), 1);
}

TEST_F(ModelVersionsTest, DrainingLetsActiveTurnsFinishAndThenRemovesTheVersion) {
  AddVersion("v2");
  const std::vector<int32_t> prompt = RandomTokens(10);
  SessionDriver active = Prefilled(prompt);
  SessionDriver retained = Prefilled(RandomTokens(6));
  ASSERT_TRUE(retained.EndTurn({}, absl::Minutes(5)).ok());
  SessionDriver fresh = Open();

  absl::StatusOr<v1::RetireModelResponse> retired = Retire(ModelId(), v1::RETIRE_MODE_DRAIN);
  ASSERT_TRUE(retired.ok()) << retired.status();
  EXPECT_EQ(retired->draining_sessions(), 2);
  EXPECT_EQ(retired->result().sessions(), 1);
  EXPECT_TRUE(IsInvalidated(retained.Commit({1}).status()));
  EXPECT_EQ(OpenStatus(ModelId()).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(active.Fork().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Retire(ModelId(), v1::RETIRE_MODE_DRAIN).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Stats().models(0).draining());
  // No prefix matches on a draining version.
  absl::StatusOr<v1::ExtendResponse> matched = fresh.Prompt(prompt);
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(matched->cached_tokens(), 0);
  EXPECT_TRUE(fresh.Close().ok());

  EXPECT_TRUE(active.Commit({1}, kBlockSize).ok());
  absl::StatusOr<v1::EndTurnResponse> ended = active.EndTurn({2, 3}, absl::Minutes(5));
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->context_len(), 13);
  EXPECT_TRUE(IsInvalidated(active.Commit({1}).status()));
  const v1::GetStatsResponse stats = Stats();
  ASSERT_EQ(stats.models_size(), 1);
  EXPECT_EQ(stats.models(0).model().id().version(), "v2");
  EXPECT_EQ(stats.tier().models_retired(), 1);
  EXPECT_TRUE(OpenStatus(ModelId("v2")).ok());
}

// Found by the coordinator fuzzer: the invalidation failed the draining version's last
// session, which removed it as drained before the retirement removed it again.
TEST_F(ModelVersionsTest, RetiringAtOnceAVersionThatIsDrainingRemovesItOnce) {
  AddVersion("v2");
  SessionDriver active = Prefilled(RandomTokens(10));
  ASSERT_TRUE(Retire(ModelId(), v1::RETIRE_MODE_DRAIN).ok());

  absl::StatusOr<v1::RetireModelResponse> retired = Retire(ModelId(), v1::RETIRE_MODE_IMMEDIATE);
  ASSERT_TRUE(retired.ok()) << retired.status();
  EXPECT_EQ(retired->result().sessions(), 1);
  EXPECT_TRUE(IsInvalidated(active.Commit({1}).status()));
  const v1::GetStatsResponse stats = Stats();
  ASSERT_EQ(stats.models_size(), 1);
  EXPECT_EQ(stats.models(0).model().id().version(), "v2");
  EXPECT_EQ(stats.tier().models_retired(), 1);
  EXPECT_TRUE(OpenStatus(ModelId("v2")).ok());
}

TEST_F(ModelVersionsTest, RetiringNeedsAModeAndChangesNothingWithout) {
  SessionDriver session = Prefilled(RandomTokens(6));
  const v1::GetStatsResponse before = Stats();
  absl::StatusOr<v1::RetireModelResponse> retired = Retire(ModelId(), v1::RETIRE_MODE_UNSPECIFIED);
  EXPECT_EQ(retired.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(retired.status().message(), HasSubstr("mode"));
  EXPECT_TRUE(MessageDifferencer::Equals(before, Stats()));
  EXPECT_TRUE(session.Commit({1}).ok());
}

TEST_F(ModelVersionsTest, RegisteringCanRetireTheOtherVersionsAtOnce) {
  SessionDriver old_session = Prefilled(RandomTokens(6));
  v1::RegisterModelRequest request;
  *request.mutable_model() = Model("v2");
  request.set_retire_others(v1::RETIRE_MODE_IMMEDIATE);
  absl::StatusOr<v1::RegisterModelResponse> registered =
      CallNow(coordinator_, &Coordinator::RegisterModel, request);
  ASSERT_TRUE(registered.ok()) << registered.status();
  ASSERT_EQ(registered->retired_size(), 1);
  EXPECT_TRUE(MessageDifferencer::Equals(registered->retired(0), ModelId()));
  EXPECT_EQ(registered->result().sessions(), 1);
  EXPECT_TRUE(IsInvalidated(old_session.Commit({1}).status()));
  harness_.Advance(absl::Seconds(1));
  const v1::GetStatsResponse stats = Stats();
  ASSERT_EQ(stats.models_size(), 1);
  EXPECT_EQ(stats.models(0).model().id().version(), "v2");
  EXPECT_TRUE(OpenStatus(ModelId("v2")).ok());
}

TEST_F(ModelVersionsTest, RegisteringWithAnUnknownRetireModeChangesNothing) {
  v1::RegisterModelRequest request;
  *request.mutable_model() = Model("v2");
  request.set_retire_others(static_cast<v1::RetireMode>(7));
  absl::StatusOr<v1::RegisterModelResponse> registered =
      CallNow(coordinator_, &Coordinator::RegisterModel, request);
  EXPECT_EQ(registered.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Stats().models_size(), 1);
}

using WideInvalidationTest = ModelVersionsTest;

TEST_F(WideInvalidationTest, ATenantIsInvalidatedInEveryModelAndOnlyIt) {
  AddVersion("v2");
  const std::vector<int32_t> prompt = RandomTokens(14);
  SessionDriver mine = Prefilled(prompt);
  SessionDriver mine_v2 = Prefilled(prompt, "t", ModelId("v2"));
  SessionDriver theirs = Prefilled(prompt, "u");
  v1::InvalidateTenantRequest request;
  request.set_tenant("t");
  absl::StatusOr<v1::InvalidationResult> result =
      CallNow(coordinator_, &Coordinator::InvalidateTenant, request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sessions(), 2);
  EXPECT_EQ(result->blocks(), 8);  // each session's four
  EXPECT_EQ(result->cached_blocks(), 6);
  EXPECT_TRUE(IsInvalidated(mine.Commit({1}).status()));
  EXPECT_TRUE(IsInvalidated(mine_v2.Commit({1}).status()));
  EXPECT_TRUE(theirs.Commit({1}).ok());
  EXPECT_EQ(CachedFor(prompt, "t"), 0);
  EXPECT_EQ(CachedFor(prompt, "t", ModelId("v2")), 0);
  EXPECT_EQ(CachedFor(prompt, "u"), 3 * kBlockSize);
  EXPECT_EQ(Stats().tier().tenant_invalidations(), 1);

  request.set_tenant("");
  EXPECT_EQ(CallNow(coordinator_, &Coordinator::InvalidateTenant, request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WideInvalidationTest, AModelInvalidationRevokesEveryBlockAndKeepsTheVersion) {
  const std::vector<int32_t> prompt = RandomTokens(14);
  SessionDriver mine = Prefilled(prompt);
  SessionDriver theirs = Prefilled(RandomTokens(5), "u");
  shards().ClearCalls();
  v1::InvalidateModelRequest request;
  *request.mutable_model() = ModelId();
  absl::StatusOr<v1::InvalidationResult> result =
      CallNow(coordinator_, &Coordinator::InvalidateModel, request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sessions(), 2);
  EXPECT_EQ(result->blocks(), kNumBlocks);
  EXPECT_EQ(result->cached_blocks(), 4);
  const auto revokes = shards().revokes();
  ASSERT_EQ(revokes.size(), 2u);
  for (const auto& call : revokes) {
    EXPECT_EQ(call.request.blocks_size(), kNumBlocks);
    EXPECT_EQ(call.request.generations_size(), kNumBlocks);
    EXPECT_EQ(call.request.sessions_size(), 2);
  }
  EXPECT_TRUE(IsInvalidated(mine.Commit({1}).status()));
  EXPECT_TRUE(IsInvalidated(theirs.Commit({1}).status()));
  EXPECT_EQ(CachedFor(prompt), 0);
  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.models_size(), 1);
  EXPECT_EQ(stats.models(0).blocks_free(), kNumBlocks);
  EXPECT_EQ(stats.tier().model_invalidations(), 1);
}

TEST_F(WideInvalidationTest, TheCountersAddUpToWhatTheCallsReturned) {
  const std::vector<int32_t> prompt = RandomTokens(14);
  SessionDriver a = Prefilled(prompt);
  SessionDriver b = Prefilled(RandomTokens(9));
  SessionDriver c = Prefilled(RandomTokens(7), "u");
  ASSERT_TRUE(a.Fork().ok());
  ASSERT_TRUE(b.Fork().ok());
  int64_t sessions = 0;
  int64_t blocks = 0;
  const auto add = [&](const absl::StatusOr<v1::InvalidationResult>& result) {
    ASSERT_TRUE(result.ok()) << result.status();
    sessions += result->sessions();
    blocks += result->blocks();
  };
  add(InvalidateSession(b));
  add(InvalidatePrefix(Head(prompt, 6)));
  v1::InvalidateTenantRequest tenant;
  tenant.set_tenant("u");
  add(CallNow(coordinator_, &Coordinator::InvalidateTenant, tenant));
  v1::InvalidateModelRequest model;
  *model.mutable_model() = ModelId();
  add(CallNow(coordinator_, &Coordinator::InvalidateModel, model));

  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.tier().forks(), 2);
  EXPECT_EQ(stats.models(0).cache().forks(), 2);
  EXPECT_EQ(stats.tier().sessions_invalidated(), sessions);
  EXPECT_EQ(stats.tier().blocks_invalidated(), blocks);
  EXPECT_EQ(stats.models(0).cache().sessions_invalidated(), sessions);
  EXPECT_EQ(stats.models(0).cache().blocks_invalidated(), blocks);
  int64_t tenant_sessions = 0;
  for (const v1::TenantStats& t : stats.models(0).tenants()) {
    tenant_sessions += t.cache().sessions_invalidated();
  }
  EXPECT_EQ(tenant_sessions, sessions);
  EXPECT_EQ(sessions, 5);  // a, b, their forks, c
  EXPECT_EQ(stats.tier().session_invalidations(), 1);
  EXPECT_EQ(stats.tier().prefix_invalidations(), 1);
  EXPECT_EQ(stats.tier().tenant_invalidations(), 1);
  EXPECT_EQ(stats.tier().model_invalidations(), 1);
}

}  // namespace
}  // namespace kvtier::test
