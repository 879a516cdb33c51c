// The data plane's refusals through real gRPC: every malformed, forged, stale or oversized step
// ends with the exact status code and a message naming the field, and the shard serves a good
// step right after.
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache/kv/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/lease_signature.h"
#include "proto/wire/time_convert.h"
#include "tests/shard/test_shard.h"

namespace kvtier {
namespace {

using ::testing::HasSubstr;

constexpr DType kDType = DType::kBF16;
constexpr int kSlot = 1;  // KV head [2, 3): one KV head, two query heads

class AttentionServiceErrorsTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(StartShard(TestShardOptions(), &shard_)); }

  void StartShard(const ShardServerOptions& options, TestShard* shard) {
    StartTestShard(key_, {TestRange(TestModelSpec(kDType), kSlot)}, options, shard);
  }

  // A lease on this shard's first incarnation.
  v1::BlockLease Lease(const std::vector<int32_t>& blocks, uint64_t generation = 1) const {
    return SignedLease(key_, TestModelId(), blocks, {1, 1}, generation);
  }

  static std::vector<v1::StepRequest> Step(const v1::BlockLease& lease, int context_len,
                                           int num_new_tokens) {
    return ZeroStep(TestModelSpec(kDType), kSlot, lease, context_len, num_new_tokens);
  }

  // A prefill of 5 tokens over blocks 3 and 9, which every case below starts from.
  std::vector<v1::StepRequest> GoodStep() const { return Step(Lease({3, 9}), 5, 5); }

  static void ExpectStatus(const StepOutcome& outcome, grpc::StatusCode code,
                           const std::string& message) {
    EXPECT_EQ(outcome.status.error_code(), code) << outcome.status.error_message();
    EXPECT_THAT(outcome.status.error_message(), HasSubstr(message));
  }

  static void ExpectServes(StepClient& client, const std::vector<v1::StepRequest>& requests) {
    const StepOutcome outcome = client.Send(requests);
    EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
    EXPECT_EQ(outcome.responses.size(), static_cast<size_t>(kTestLayers));
  }

  const std::string key_ = NewLeaseKey();
  TestShard shard_;
};

v1::BlockLease& LeaseOf(std::vector<v1::StepRequest>& requests) {
  return *requests[0].mutable_plan()->mutable_sequences(0)->mutable_lease();
}

TEST_F(AttentionServiceErrorsTest, RefusesBadStepsNamingTheFieldAndKeepsServing) {
  struct Case {
    const char* what;
    // Spoils a good step.
    std::function<void(std::vector<v1::StepRequest>&)> spoil;
    grpc::StatusCode code;
    std::string message;
  };
  // Edits of the lease (signed again with the coordinator's key), the plan, or a layer.
  const std::string& key = key_;
  auto resigned = [&key](std::function<void(v1::BlockLease&)> edit) {
    return [&key, edit](std::vector<v1::StepRequest>& requests) {
      edit(LeaseOf(requests));
      SignLease(key, &LeaseOf(requests));
    };
  };
  auto plan = [](std::function<void(v1::StepPlan&)> edit) {
    return [edit](std::vector<v1::StepRequest>& requests) { edit(*requests[0].mutable_plan()); };
  };
  auto layer = [](int index, std::function<void(v1::LayerTensors&)> edit) {
    return [index, edit](std::vector<v1::StepRequest>& requests) {
      edit(*requests[index].mutable_layer());
    };
  };
  using grpc::StatusCode;
  const std::vector<Case> cases = {
      {"signed with another key",
       [](auto& requests) { SignLease(NewLeaseKey(), &LeaseOf(requests)); },
       StatusCode::PERMISSION_DENIED, "plan.sequences[0].lease: bad signature"},
      {"a block changed after signing", [](auto& requests) { LeaseOf(requests).set_blocks(1, 4); },
       StatusCode::PERMISSION_DENIED, "plan.sequences[0].lease: bad signature"},
      {"an earlier incarnation",
       resigned([](v1::BlockLease& lease) { lease.set_shard_incarnations(kSlot, 0); }),
       StatusCode::FAILED_PRECONDITION,
       "lease: issued for incarnation 0 of slot 1, this shard is incarnation 1: its K/V was "
       "lost; open a new session and re-prefill"},
      {"a later incarnation",
       resigned([](v1::BlockLease& lease) { lease.set_shard_incarnations(kSlot, 2); }),
       StatusCode::FAILED_PRECONDITION, "issued for incarnation 2 of slot 1"},
      {"an incarnation per slot missing",
       resigned([](v1::BlockLease& lease) { lease.mutable_shard_incarnations()->RemoveLast(); }),
       StatusCode::INVALID_ARGUMENT,
       "plan.sequences[0].lease.shard_incarnations: expected 2 entries"},
      {"expired", resigned([](v1::BlockLease& lease) {
         *lease.mutable_expires_at() = ToProtoTimestamp(absl::Now() - absl::Seconds(1));
       }),
       StatusCode::PERMISSION_DENIED, "plan.sequences[0].lease.expires_at: expired"},
      {"another model's lease",
       resigned([](v1::BlockLease& lease) { lease.mutable_model()->set_name("other"); }),
       StatusCode::PERMISSION_DENIED, "plan.sequences[0].lease.model"},
      {"another version's lease",
       resigned([](v1::BlockLease& lease) { lease.mutable_model()->set_version("2"); }),
       StatusCode::PERMISSION_DENIED,
       "plan.sequences[0].lease.model: the lease is for model m@2, the step for m@1"},
      {"a block past the pool",
       resigned([](v1::BlockLease& lease) { lease.set_blocks(1, kTestBlocks); }),
       StatusCode::INVALID_ARGUMENT, "plan.sequences[0].lease.blocks[1]: 32 out of range [0, 32)"},
      {"a negative block", resigned([](v1::BlockLease& lease) { lease.set_blocks(0, -1); }),
       StatusCode::INVALID_ARGUMENT, "lease.blocks[0]: -1 out of range"},
      {"a generation missing",
       resigned([](v1::BlockLease& lease) { lease.mutable_generations()->RemoveLast(); }),
       StatusCode::INVALID_ARGUMENT, "lease.generations: expected one per block (2), got 1"},
      {"context beyond the leased blocks",
       plan([](v1::StepPlan& plan) { plan.mutable_sequences(0)->set_context_len(9); }),
       StatusCode::INVALID_ARGUMENT,
       "plan.sequences[0].context_len: 9 exceeds the lease's 2 blocks x 4 tokens"},
      {"no new tokens",
       plan([](v1::StepPlan& plan) { plan.mutable_sequences(0)->set_num_new_tokens(0); }),
       StatusCode::INVALID_ARGUMENT,
       "plan.sequences[0].num_new_tokens: expected at least 1, got 0"},
      {"more new tokens than context",
       plan([](v1::StepPlan& plan) { plan.mutable_sequences(0)->set_num_new_tokens(6); }),
       StatusCode::INVALID_ARGUMENT, "plan.sequences[0].num_new_tokens: 6 exceeds context_len 5"},
      {"another dtype",
       plan([](v1::StepPlan& plan) { plan.mutable_shapes()->set_dtype(v1::DTYPE_FP32); }),
       StatusCode::INVALID_ARGUMENT, "plan.shapes.dtype: expected DTYPE_BF16, got DTYPE_FP32"},
      {"the model's heads, not the slot's",
       plan([](v1::StepPlan& plan) { plan.mutable_shapes()->set_num_kv_heads(kTestKvHeads); }),
       StatusCode::INVALID_ARGUMENT, "plan.shapes.num_kv_heads: expected"},
      {"no shapes", plan([](v1::StepPlan& plan) { plan.clear_shapes(); }),
       StatusCode::INVALID_ARGUMENT, "plan.shapes.num_tokens: expected 5, got 0"},
      {"no sequences", plan([](v1::StepPlan& plan) { plan.clear_sequences(); }),
       StatusCode::INVALID_ARGUMENT, "plan.sequences: expected at least one sequence"},
      {"another slot", plan([](v1::StepPlan& plan) { plan.set_slot(0); }),
       StatusCode::FAILED_PRECONDITION, "plan.slot: this shard holds slot 1 of model m, got 0"},
      {"an unknown model", plan([](v1::StepPlan& plan) { plan.mutable_model()->set_name("nope"); }),
       StatusCode::NOT_FOUND, "plan.model.name: this shard holds no range of model \"nope\""},
      {"a 1 MB model name",
       plan([](v1::StepPlan& plan) { plan.mutable_model()->set_name(std::string(1 << 20, 'x')); }),
       StatusCode::NOT_FOUND,
       "plan.model.name: this shard holds no range of model \"" + std::string(64, 'x') +
           "…\" (1048576 bytes)"},
      {"another version", plan([](v1::StepPlan& plan) { plan.mutable_model()->set_version("2"); }),
       StatusCode::NOT_FOUND,
       "plan.model.version: this shard holds version \"1\" of model \"m\", not \"2\""},
      {"no plan", [](auto& requests) { requests[0].clear_plan(); }, StatusCode::INVALID_ARGUMENT,
       "plan: the first message of a step must carry a plan"},
      {"a layer past the model", layer(1, [](v1::LayerTensors& t) { t.set_layer(9); }),
       StatusCode::INVALID_ARGUMENT, "layer.layer: expected 0..1, got 9"},
      {"a negative layer", layer(0, [](v1::LayerTensors& t) { t.set_layer(-1); }),
       StatusCode::INVALID_ARGUMENT, "layer.layer: expected 0..1, got -1"},
      {"q a byte short", layer(1, [](v1::LayerTensors& t) { t.mutable_q()->pop_back(); }),
       StatusCode::INVALID_ARGUMENT,
       "layer 1: q: expected 1280 bytes (5 tokens x 2 heads x 64 x bf16), got 1279"},
      {"k a byte long", layer(1, [](v1::LayerTensors& t) { t.mutable_k()->push_back('\0'); }),
       StatusCode::INVALID_ARGUMENT,
       "layer 1: k: expected 640 bytes (5 tokens x 1 heads x 64 x bf16), got 641"},
      {"v empty", layer(0, [](v1::LayerTensors& t) { t.clear_v(); }), StatusCode::INVALID_ARGUMENT,
       "layer 0: v: expected 640 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<v1::StepRequest> requests = GoodStep();
    c.spoil(requests);
    ExpectStatus(shard_.client->Send(requests), c.code, c.message);
    ExpectServes(*shard_.client, GoodStep());
  }
}

// Block 21 is freed from session "old" (generation 1) and granted to "new" (generation 2):
// once the new lease has been used here, the old one is refused.
TEST_F(AttentionServiceErrorsTest, RefusesALeaseOnceANewerGenerationOfItsBlockWasUsed) {
  const std::vector<v1::StepRequest> old_step = Step(Lease({20, 21}), 6, 6);
  ExpectServes(*shard_.client, old_step);
  const std::vector<v1::StepRequest> new_step = Step(Lease({21}, 2), 4, 4);
  ExpectServes(*shard_.client, new_step);
  ExpectStatus(shard_.client->Send(old_step), grpc::StatusCode::PERMISSION_DENIED,
               "plan.sequences[0].lease.blocks[1]: block 21 was reassigned (generation 2 > "
               "lease's 1)");
  ExpectServes(*shard_.client, new_step);
}

// A stream admitted with the old lease stops at its next layer once the block's new owner has
// stepped here.
TEST_F(AttentionServiceErrorsTest, StopsAStepWhoseLeaseWentStaleBetweenLayers) {
  const std::vector<v1::StepRequest> old_step = Step(Lease({22, 23}), 8, 8);
  grpc::ClientContext context;
  context.set_deadline(TestDeadline());
  auto stream = shard_.client->stub().Step(&context);
  v1::StepResponse response;
  ASSERT_TRUE(stream->Write(old_step[0]));
  ASSERT_TRUE(stream->Read(&response));

  ExpectServes(*shard_.client, Step(Lease({23}, 2), 4, 4));

  stream->Write(old_step[1]);
  EXPECT_FALSE(stream->Read(&response));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("plan.sequences[0].lease.blocks[1]: block 23 was reassigned"));
}

// Committed positions are read-only (invariant 3): a step may write only from the lease's
// writable position on, and a session's older lease cannot write below what a newer lease of
// the same writer made read-only here.
TEST_F(AttentionServiceErrorsTest, RefusesWritesBelowTheWritablePosition) {
  v1::BlockLease shared = Lease({30, 31});
  shared.set_session_id("sharing");
  shared.set_writer_epoch(1);
  shared.set_writable_from(4);
  SignLease(key_, &shared);
  ExpectStatus(shard_.client->Send(Step(shared, 5, 5)), grpc::StatusCode::PERMISSION_DENIED,
               "plan.sequences[0].lease.writable_from: the step writes position 0, but positions "
               "below 4 are committed and read-only");
  ExpectServes(*shard_.client, Step(shared, 5, 1));  // writes position 4

  v1::BlockLease older = shared;
  older.set_writable_from(0);
  SignLease(key_, &older);
  ExpectStatus(shard_.client->Send(Step(older, 5, 5)), grpc::StatusCode::PERMISSION_DENIED,
               "positions below 4 are committed and read-only");
  ExpectServes(*shard_.client, Step(older, 6, 1));  // position 5: still its own to write
  ExpectServes(*shard_.client, GoodStep());         // other sessions are unaffected
}

// A take-over raises the session's writer epoch: once the new writer has stepped here, the
// old writer's leases are refused, for new steps and between the layers of a running one.
TEST_F(AttentionServiceErrorsTest, FencesAnOlderWriterOfTheSession) {
  v1::BlockLease first = Lease({24, 25});
  first.set_session_id("taken-over");
  first.set_writer_epoch(1);
  SignLease(key_, &first);
  v1::BlockLease second = first;
  second.set_writer_epoch(2);
  SignLease(key_, &second);

  const std::vector<v1::StepRequest> zombie_step = Step(first, 6, 6);
  grpc::ClientContext context;
  context.set_deadline(TestDeadline());
  auto stream = shard_.client->stub().Step(&context);
  v1::StepResponse response;
  ASSERT_TRUE(stream->Write(zombie_step[0]));
  ASSERT_TRUE(stream->Read(&response));

  ExpectServes(*shard_.client, Step(second, 6, 6));
  stream->Write(zombie_step[1]);
  EXPECT_FALSE(stream->Read(&response));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("lease.writer_epoch"));
  ExpectStatus(shard_.client->Send(Step(first, 7, 1)), grpc::StatusCode::PERMISSION_DENIED,
               "plan.sequences[0].lease.writer_epoch: session taken-over has a newer writer "
               "(epoch 2 > the lease's 1)");
  ExpectServes(*shard_.client, Step(second, 7, 1));
  ExpectServes(*shard_.client, GoodStep());  // other sessions are unaffected
}

// A session appears at most once per step, at overlapping positions or not. The refusal comes
// before any lease is admitted: the session's older writer and its blocks' older generation
// still step afterwards.
TEST_F(AttentionServiceErrorsTest, RefusesASessionTwiceInOneStepAndChangesNothing) {
  v1::BlockLease older = Lease({26, 27});
  older.set_session_id("twice");
  older.set_writer_epoch(1);
  SignLease(key_, &older);
  v1::BlockLease newer = Lease({26, 27}, 2);
  newer.set_session_id("twice");
  newer.set_writer_epoch(2);
  SignLease(key_, &newer);
  auto sequence = [](const v1::BlockLease& lease, int context_len, int num_new_tokens) {
    v1::SequenceStep step;
    *step.mutable_lease() = lease;
    step.set_context_len(context_len);
    step.set_num_new_tokens(num_new_tokens);
    return step;
  };
  const struct {
    const char* what;
    std::vector<v1::SequenceStep> sequences;
    int repeat;  // the index naming "twice" again
  } cases[] = {
      {"overlapping positions", {sequence(newer, 5, 5), sequence(newer, 6, 3)}, 1},
      {"disjoint positions", {sequence(newer, 4, 4), sequence(newer, 8, 4)}, 1},
      {"beside another session",
       {sequence(newer, 4, 4), sequence(Lease({28}), 1, 1), sequence(newer, 5, 1)},
       2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    ExpectStatus(shard_.client->Send(ZeroStep(TestModelSpec(kDType), kSlot, c.sequences)),
                 grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("plan.sequences[", c.repeat,
                              "].lease.session_id: the same session as plan.sequences[0]; a "
                              "session may appear at most once per step"));
  }
  ExpectServes(*shard_.client, Step(older, 6, 6));
  ExpectServes(*shard_.client, GoodStep());
}

// Steps follow one another on one stream, each begun by its plan; a refused step ends the
// stream, and a new stream serves the next.
TEST_F(AttentionServiceErrorsTest, ServesSuccessiveStepsOverOneStream) {
  std::vector<v1::StepRequest> requests = GoodStep();
  for (const v1::StepRequest& request : Step(Lease({3, 9}), 6, 1)) requests.push_back(request);
  for (const v1::StepRequest& request : Step(Lease({3, 9}), 7, 1)) requests.push_back(request);
  const StepOutcome outcome = shard_.client->Send(requests);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.responses.size(), static_cast<size_t>(3 * kTestLayers));

  std::vector<v1::StepRequest> spoiled = GoodStep();
  for (const v1::StepRequest& request : Step(Lease({3, 9}), 9, 1)) spoiled.push_back(request);
  const StepOutcome refused = shard_.client->Send(spoiled);
  ExpectStatus(refused, grpc::StatusCode::INVALID_ARGUMENT,
               "plan.sequences[0].context_len: 9 exceeds the lease's 2 blocks x 4 tokens");
  EXPECT_EQ(refused.responses.size(), static_cast<size_t>(kTestLayers));
  ExpectServes(*shard_.client, GoodStep());
  // A stream may end without having carried a step (a front-end closing an idle stream).
  EXPECT_TRUE(shard_.client->Send({}).status.ok());
}

// Past max_streams a stream is refused at once with RESOURCE_EXHAUSTED; the streams within the
// limit step on, alternately, and a stream that ends frees its place.
TEST_F(AttentionServiceErrorsTest, RefusesStreamsPastTheLimitAndServesThoseWithin) {
  ShardServerOptions options = TestShardOptions();
  options.max_streams = 2;
  options.step_threads = 1;
  TestShard limited;
  ASSERT_NO_FATAL_FAILURE(StartShard(options, &limited));
  struct Open {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepResponse>> stream;
  };
  Open open[2];
  for (Open& held : open) {
    held.context.set_deadline(TestDeadline());
    held.stream = limited.client->stub().Step(&held.context);
  }
  // Both streams step in turn, several times: neither waits on the other.
  for (int round = 0; round < 3; ++round) {
    for (Open& held : open) {
      for (const v1::StepRequest& request : GoodStep()) {
        ASSERT_TRUE(held.stream->Write(request));
        v1::StepResponse response;
        ASSERT_TRUE(held.stream->Read(&response));
        EXPECT_EQ(response.layer(), request.layer().layer());
      }
    }
  }
  ExpectStatus(limited.client->Send(GoodStep()), grpc::StatusCode::RESOURCE_EXHAUSTED,
               "Step: this shard serves at most 2 concurrent streams (max_streams)");
  open[0].stream->WritesDone();
  EXPECT_TRUE(open[0].stream->Finish().ok());
  // The freed place is taken once the server has seen the stream end.
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; ++attempt) {
    served = limited.client->Send(GoodStep()).status.ok();
    if (!served) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(served);
  open[1].stream->WritesDone();
  EXPECT_TRUE(open[1].stream->Finish().ok());
}

TEST_F(AttentionServiceErrorsTest, RefusesMessagesOverTheSizeLimit) {
  ShardServerOptions options = TestShardOptions();
  options.max_message_bytes = 64 << 10;
  TestShard small;
  ASSERT_NO_FATAL_FAILURE(StartShard(options, &small));
  std::vector<v1::StepRequest> requests = GoodStep();
  requests[1].mutable_layer()->mutable_q()->resize(100 << 10);
  const StepOutcome outcome = small.client->Send(requests);
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << outcome.status.error_message();
  ExpectServes(*small.client, GoodStep());
}

}  // namespace
}  // namespace kvtier
