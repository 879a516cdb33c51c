// Step against fake shards (each answers out = its q) and a fake coordinator: the head split
// and reassembly in any answer order, the plan, streams carried over from step to step, the
// step deadline, size checks, and how shard failures are told.
#include "client/step.h"

#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/status_convert.h"
#include "tests/client/fake_tier.h"

namespace kvtier {
namespace {

using test::kTenant;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class StepTest : public ::testing::Test {
 protected:
  StepTest() : rng_(seed_), client_(tier_.Connect()) {}

  std::unique_ptr<Session> Open() {
    absl::StatusOr<std::unique_ptr<Session>> session =
        client_->OpenSession(tier_.model.id(), kTenant);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *std::move(session) : nullptr;
  }

  // A step over a fresh session extended by `num_tokens` tokens.
  std::unique_ptr<Step> Begin(int num_tokens) {
    session_ = Open();
    EXPECT_TRUE(session_->Extend(std::vector<int32_t>(num_tokens, 1)).ok());
    absl::StatusOr<std::unique_ptr<Step>> step = session_->BeginStep();
    EXPECT_TRUE(step.ok()) << step.status();
    return step.ok() ? *std::move(step) : nullptr;
  }

  absl::Status Attend(Step& step, int layer, test::LayerInputs& tensors) {
    return step.Attend(layer, test::Bytes(tensors.q), test::Bytes(tensors.k),
                       test::Bytes(tensors.v), test::MutableBytes(tensors.out));
  }

  int Requests(int shard) const {
    int requests = 0;
    for (const FakeShard::RecordedStep& stream : tier_.shards[shard].steps()) {
      requests += static_cast<int>(stream.requests.size());
    }
    return requests;
  }

  const uint64_t seed_ = test::FreshSeed();
  std::mt19937_64 rng_;
  test::FakeTier tier_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Session> session_;
};

// Two sessions in one step (3 + 2 rows): every shard gets its heads of each row of q, k and v
// and the plan once; the output is assembled from the shards' answers (here: their q).
TEST_F(StepTest, SplitsHeadsAcrossShardsAndAssemblesTheirAnswers) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  const v1::ModelSpec& model = tier_.model;
  std::unique_ptr<Session> a = Open();
  std::unique_ptr<Session> b = Open();
  ASSERT_TRUE(a->Extend({1, 2, 3}).ok());
  ASSERT_TRUE(b->Extend({4, 5}).ok());
  Session* batch[] = {a.get(), b.get()};
  absl::StatusOr<std::unique_ptr<Step>> step = client_->BeginStep(batch);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ((*step)->num_tokens(), 5);

  std::vector<test::LayerInputs> layers;
  for (int layer = 0; layer < model.num_layers(); ++layer) {
    layers.push_back(test::RandomLayer(model, 5, rng_));
    ASSERT_TRUE(Attend(**step, layer, layers.back()).ok());
    EXPECT_EQ(layers.back().out, layers.back().q) << "layer " << layer;
  }
  ASSERT_TRUE((*step)->Finish().ok());
  EXPECT_EQ(a->context_len(), 3);
  EXPECT_EQ(b->context_len(), 2);

  const int group = model.num_q_heads() / model.num_kv_heads();
  const int kv_heads[2][2] = {{0, 2}, {2, 3}};
  for (int slot = 0; slot < 2; ++slot) {
    SCOPED_TRACE(absl::StrCat("shard ", slot));
    const std::vector<FakeShard::RecordedStep> streams = tier_.shards[slot].steps();
    ASSERT_EQ(streams.size(), 1u);
    const std::vector<v1::StepRequest>& requests = streams[0].requests;
    ASSERT_EQ(requests.size(), static_cast<size_t>(model.num_layers()));
    const int begin = kv_heads[slot][0];
    const int end = kv_heads[slot][1];

    ASSERT_TRUE(requests[0].has_plan());
    const v1::StepPlan& plan = requests[0].plan();
    EXPECT_EQ(plan.model().name(), "toy");
    EXPECT_EQ(plan.model().version(), "1");
    EXPECT_EQ(plan.slot(), slot);
    EXPECT_EQ(plan.shapes().num_tokens(), 5);
    EXPECT_EQ(plan.shapes().num_kv_heads(), end - begin);
    EXPECT_EQ(plan.shapes().num_q_heads(), (end - begin) * group);
    EXPECT_EQ(plan.shapes().head_dim(), model.head_dim());
    EXPECT_EQ(plan.shapes().dtype(), model.dtype());
    ASSERT_EQ(plan.sequences_size(), 2);
    EXPECT_EQ(plan.sequences(0).lease().session_id(), a->id());
    EXPECT_EQ(plan.sequences(0).context_len(), 3);
    EXPECT_EQ(plan.sequences(0).num_new_tokens(), 3);
    EXPECT_EQ(plan.sequences(1).lease().session_id(), b->id());
    EXPECT_EQ(plan.sequences(1).context_len(), 2);
    EXPECT_EQ(plan.sequences(1).num_new_tokens(), 2);

    for (int layer = 0; layer < model.num_layers(); ++layer) {
      SCOPED_TRACE(absl::StrCat("layer ", layer));
      const v1::StepRequest& request = requests[layer];
      EXPECT_EQ(request.has_plan(), layer == 0);
      EXPECT_EQ(request.layer().layer(), layer);
      EXPECT_EQ(request.layer().q(), test::HeadSlice(layers[layer].q, model.num_q_heads(),
                                                     model.head_dim(), begin * group, end * group));
      EXPECT_EQ(request.layer().k(), test::HeadSlice(layers[layer].k, model.num_kv_heads(),
                                                     model.head_dim(), begin, end));
      EXPECT_EQ(request.layer().v(), test::HeadSlice(layers[layer].v, model.num_kv_heads(),
                                                     model.head_dim(), begin, end));
    }
  }
}

// The next step's plan places the new token after what the last one wrote, and both steps
// travel over the one stream each shard's stream carries on.
TEST_F(StepTest, TheNextStepContinuesAfterTheWrittenTokensOverTheSameStream) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Session> session = Open();
  ASSERT_TRUE(test::ExtendAndStep(*session, {1, 2, 3}, rng_).ok());
  ASSERT_TRUE(test::ExtendAndStep(*session, {4}, rng_).ok());
  ASSERT_TRUE(test::ExtendAndStep(*session, {5}, rng_).ok());
  for (const FakeShard& shard : tier_.shards) {
    const std::vector<FakeShard::RecordedStep> steps = shard.steps();
    ASSERT_EQ(steps.size(), 3u);
    const v1::SequenceStep& sequence = steps[1].requests[0].plan().sequences(0);
    EXPECT_EQ(sequence.context_len(), 4);
    EXPECT_EQ(sequence.num_new_tokens(), 1);
    EXPECT_EQ(shard.streams(), 1);
    for (const FakeShard::RecordedStep& step : steps) EXPECT_EQ(step.stream, 0);
  }
}

// Shard 0 answers each layer only once shard 1 has answered it: the output is assembled from
// answers in reverse shard order all the same.
TEST_F(StepTest, AnswersInReverseShardOrderAreAssembled) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  FakeShard& first = tier_.shards[0];
  FakeShard& second = tier_.shards[1];
  first.HoldAnswersUntil([&first, &second] { return second.answers() > first.answers(); });
  std::unique_ptr<Step> step = Begin(3);
  for (int layer = 0; layer < tier_.model.num_layers(); ++layer) {
    test::LayerInputs tensors = test::RandomLayer(tier_.model, 3, rng_);
    ASSERT_TRUE(Attend(*step, layer, tensors).ok());
    EXPECT_EQ(tensors.out, tensors.q) << "layer " << layer;
  }
  ASSERT_TRUE(step->Finish().ok());
  EXPECT_EQ(first.answers(), tier_.model.num_layers());
}

// A shard that answers nothing within the step deadline: DEADLINE_EXCEEDED, and the next step
// works over a new stream.
TEST_F(StepTest, AShardPastTheStepDeadlineFailsTheStepAndTheNextOneReopens) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  ClientOptions options = tier_.options();
  options.step_deadline = absl::Seconds(1);
  std::unique_ptr<Client> client = *Client::Connect(options);
  std::unique_ptr<Session> session = *client->OpenSession(tier_.model.id(), kTenant);
  ASSERT_TRUE(test::ExtendAndStep(*session, {1, 2}, rng_).ok());
  tier_.shards[1].HoldAnswersUntil([] { return false; });
  absl::Status status = test::ExtendAndStep(*session, {3}, rng_);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_THAT(status.message(), HasSubstr("shard 1"));
  tier_.shards[1].HoldAnswersUntil(nullptr);
  ASSERT_TRUE(test::ExtendAndStep(*session, {3}, rng_).ok());
  EXPECT_EQ(session->context_len(), 3);
  EXPECT_EQ(tier_.shards[0].streams(), 1);
  EXPECT_EQ(tier_.shards[1].streams(), 2);
}

// A stream the shard ends in the middle of a step fails that step; the next opens a new one.
TEST_F(StepTest, AStreamBrokenMidStepFailsItAndTheNextStepReopens) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Session> session = Open();
  ASSERT_TRUE(test::ExtendAndStep(*session, {1, 2}, rng_).ok());
  tier_.shards[0].FailNextStep(grpc::Status(grpc::StatusCode::UNAVAILABLE, "reset"), 1);
  absl::Status status = test::ExtendAndStep(*session, {3}, rng_);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("shard 0"));
  EXPECT_EQ(session->context_len(), 2);
  ASSERT_TRUE(test::ExtendAndStep(*session, {3}, rng_).ok());
  EXPECT_EQ(session->context_len(), 3);
  EXPECT_EQ(tier_.shards[0].streams(), 2);
  EXPECT_EQ(tier_.shards[1].streams(), 1);
}

TEST_F(StepTest, FinishWithoutALayerIsRefused) {
  std::unique_ptr<Step> step = Begin(1);
  EXPECT_EQ(step->Finish().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(session_->pending_tokens(), 0);
}

// Each tensor one byte off in turn: refused naming it, nothing sent; the step still works.
TEST_F(StepTest, TensorsOfTheWrongSizeAreRefusedNamingThemAndSendNothing) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Step> step = Begin(3);
  test::LayerInputs good = test::RandomLayer(tier_.model, 3, rng_);
  const absl::Span<const char> q = test::Bytes(good.q), k = test::Bytes(good.k),
                               v = test::Bytes(good.v);
  const absl::Span<char> out = test::MutableBytes(good.out);
  const struct {
    const char* name;
    absl::Status status;
  } cases[] = {
      {"q", step->Attend(0, q.subspan(1), k, v, out)},
      {"k", step->Attend(0, q, k.subspan(1), v, out)},
      {"v", step->Attend(0, q, k, v.subspan(1), out)},
      {"out", step->Attend(0, q, k, v, out.subspan(1))},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(c.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(c.status.message(), HasSubstr(absl::StrCat(c.name, ": expected")));
  }
  ASSERT_TRUE(Attend(*step, 0, good).ok());
  EXPECT_EQ(Requests(0), 1);
  EXPECT_EQ(Requests(1), 1);
}

TEST_F(StepTest, ALayerOutOfRangeIsRefusedAndSendsNothing) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Step> step = Begin(1);
  test::LayerInputs tensors = test::RandomLayer(tier_.model, 1, rng_);
  for (int layer : {-1, tier_.model.num_layers()}) {
    absl::Status status = Attend(*step, layer, tensors);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("layer"));
  }
  ASSERT_TRUE(Attend(*step, 1, tensors).ok());
  EXPECT_EQ(Requests(0), 1);
  EXPECT_EQ(Requests(1), 1);
}

// The shard is unreachable and the coordinator says the session was lost with it: re-prefill.
TEST_F(StepTest, AShardFailureIsExplainedByTheCoordinator) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Step> step = Begin(2);
  tier_.shards[1].FailNextStep(grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone"), 0);
  tier_.coordinator.FailNext("GetSession",
                             ToGrpcStatus(ReprefillRequiredError("lost with shard 1")));
  absl::Status status = test::RunStep(*step, tier_.model, rng_);
  EXPECT_TRUE(IsReprefillRequired(status)) << status;
  const FakeSessionService::Calls calls = tier_.coordinator.calls();
  ASSERT_EQ(calls.get_session.size(), 1u);
  EXPECT_EQ(calls.get_session[0].session_id(), session_->id());
  EXPECT_EQ(calls.get_session[0].tenant(), kTenant);
  EXPECT_EQ(session_->pending_tokens(), 0);
}

// The coordinator still holds the session: the shard's own status, naming the shard.
TEST_F(StepTest, AShardFailureTheCoordinatorCannotExplainKeepsTheShardsStatus) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Step> step = Begin(2);
  tier_.shards[1].FailNextStep(grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone"), 0);
  absl::Status status = test::RunStep(*step, tier_.model, rng_);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("shard 1 (", tier_.shards[1].address())));
  EXPECT_THAT(status.message(), HasSubstr("gone"));
  EXPECT_EQ(tier_.coordinator.calls().get_session.size(), 1u);
}

// A shard that says re-prefill itself needs no explaining.
TEST_F(StepTest, AShardsReprefillStatusNeedsNoCoordinator) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Step> step = Begin(2);
  tier_.shards[0].FailNextStep(ToGrpcStatus(ReprefillRequiredError("new incarnation")), 1);
  absl::Status status = test::RunStep(*step, tier_.model, rng_);
  EXPECT_TRUE(IsReprefillRequired(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("shard 0"));
  EXPECT_THAT(tier_.coordinator.calls().rpcs, ElementsAre("OpenSession", "Extend"));
}

TEST_F(StepTest, AFailedStepStaysFailed) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Step> step = Begin(2);
  tier_.shards[0].FailNextStep(grpc::Status(grpc::StatusCode::INTERNAL, "bad"), 0);
  test::LayerInputs tensors = test::RandomLayer(tier_.model, 2, rng_);
  const absl::Status failure = Attend(*step, 0, tensors);
  ASSERT_EQ(failure.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Attend(*step, 1, tensors), failure);
  EXPECT_EQ(step->Finish(), failure);
  EXPECT_EQ(session_->context_len(), 0);
}

TEST_F(StepTest, AttendAfterFinishIsRefused) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Step> step = Begin(1);
  ASSERT_TRUE(test::RunStep(*step, tier_.model, rng_).ok());
  test::LayerInputs tensors = test::RandomLayer(tier_.model, 1, rng_);
  EXPECT_EQ(Attend(*step, 0, tensors).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kvtier
