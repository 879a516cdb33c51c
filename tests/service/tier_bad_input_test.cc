// Bad input through the whole tier: each request gets its status code with a message naming
// the field, and the tier keeps serving everyone else (a checked session runs after each).
// Raw stubs stand in for a buggy or hostile client where the client library would refuse.
#include <chrono>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/step.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "kvtier/v1/attention.grpc.pb.h"
#include "kvtier/v1/session.grpc.pb.h"
#include "proto/wire/layer_shapes.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/status_convert.h"
#include "service/head_placement.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

constexpr int kKvHeads = 2;
constexpr int kQHeads = 4;
constexpr int kHeadDim = 32;

class TierBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(FastTier(TestModel("m", kKvHeads, kQHeads, 2, DType::kBF16, 16))); }

  void Start(const LocalTierOptions& options) {
    const uint64_t seed = FreshSeed();
    rng_.seed(seed);
    std::cout << "seed " << seed << "\n";
    absl::StatusOr<Tier> tier = StartTier(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    tier_ = *std::move(tier);
    absl::StatusOr<std::unique_ptr<Session>> bystander =
        tier_.client->OpenSession(TestModelId("m"), "other");
    ASSERT_TRUE(bystander.ok()) << bystander.status();
    bystander_ = Checked(*std::move(bystander));
    ASSERT_TRUE(CheckedStep(*tier_.client, {&bystander_}, {5}, rng_).ok());
  }

  // Everyone else is still served correctly.
  void ExpectOthersServed() {
    EXPECT_TRUE(CheckedStep(*tier_.client, {&bystander_}, {1}, rng_).ok());
  }

  // A session with room for `tokens` and the lease the coordinator granted for it.
  v1::SequenceStep Reserve(int tokens, std::string* session_id = nullptr) {
    v1::OpenSessionRequest open;
    *open.mutable_model() = TestModelId("m");
    open.set_tenant("raw");
    absl::StatusOr<v1::OpenSessionResponse> opened = tier_.local->coordinator().OpenSession(open);
    EXPECT_TRUE(opened.ok()) << opened.status();
    v1::ExtendRequest extend;
    extend.set_session_id(opened->session().session_id());
    extend.set_tenant("raw");
    extend.set_reserve_tokens(tokens);
    extend.set_writer(opened->grant().writer());
    absl::StatusOr<v1::ExtendResponse> extended = tier_.local->coordinator().Extend(extend);
    EXPECT_TRUE(extended.ok()) << extended.status();
    if (session_id != nullptr) *session_id = opened->session().session_id();
    v1::SequenceStep sequence;
    *sequence.mutable_lease() = extended->lease();
    sequence.set_context_len(tokens);
    sequence.set_num_new_tokens(tokens);
    return sequence;
  }

  // One raw layer of a step to shard 0 (slot 0: kv head 0, q heads 0..1), bf16 tensors sized
  // for `tokens` unless the caller changes them.
  v1::StepRequest RawRequest(const v1::SequenceStep& sequence, int layer = 0) {
    v1::StepRequest request;
    *request.mutable_plan()->mutable_model() = TestModelId("m");
    request.mutable_plan()->set_slot(0);
    *request.mutable_plan()->add_sequences() = sequence;
    const int tokens = sequence.num_new_tokens();
    *request.mutable_plan()->mutable_shapes() =
        LayerShapesFor(TestModel("m", kKvHeads, kQHeads, 2),
                       HeadRangeForSlot(TestModel("m", kKvHeads, kQHeads, 2), 0), tokens);
    v1::LayerTensors* tensors = request.mutable_layer();
    tensors->set_layer(layer);
    tensors->mutable_q()->assign(tokens * (kQHeads / 2) * kHeadDim * 2, '\0');
    tensors->mutable_k()->assign(tokens * (kKvHeads / 2) * kHeadDim * 2, '\0');
    tensors->mutable_v()->assign(tokens * (kKvHeads / 2) * kHeadDim * 2, '\0');
    return request;
  }

  // Sends one request on a fresh Step stream to shard 0; the stream's final status.
  absl::Status SendRaw(const v1::StepRequest& request) {
    auto stub = v1::AttentionService::NewStub(
        grpc::CreateChannel(tier_.local->shard_address(0), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto stream = stub->Step(&context);
    stream->Write(request);
    stream->WritesDone();
    v1::StepResponse response;
    while (stream->Read(&response)) {
    }
    return FromGrpcStatus(stream->Finish());
  }

  Tier tier_;
  CheckedSession bystander_;
  std::mt19937_64 rng_;
};

TEST_F(TierBadInputTest, WellFormedRawRequestIsServed) {
  // The raw path itself works, so the rejections below are about the one thing each breaks.
  EXPECT_TRUE(SendRaw(RawRequest(Reserve(3))).ok());
}

TEST_F(TierBadInputTest, WrongTensorSize) {
  v1::StepRequest request = RawRequest(Reserve(3));
  request.mutable_layer()->mutable_k()->pop_back();
  absl::Status status = SendRaw(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("k: expected"));
  ExpectOthersServed();
}

TEST_F(TierBadInputTest, WrongDtype) {
  // fp32 tensors for a bf16 model, declared as such: refused by the plan's shapes.
  v1::StepRequest request = RawRequest(Reserve(2));
  request.mutable_plan()->mutable_shapes()->set_dtype(v1::DTYPE_FP32);
  for (std::string* tensor :
       {request.mutable_layer()->mutable_q(), request.mutable_layer()->mutable_k(),
        request.mutable_layer()->mutable_v()}) {
    tensor->append(*tensor);
  }
  absl::Status status = SendRaw(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("plan.shapes.dtype: expected DTYPE_BF16"));

  // Undeclared, the byte count gives it away.
  request = RawRequest(Reserve(2));
  std::string* q = request.mutable_layer()->mutable_q();
  q->append(*q);
  status = SendRaw(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("bf16"));

  v1::ModelSpec model = TestModel("other-model", 2, 4, 1);
  model.set_dtype(v1::DTYPE_UNSPECIFIED);
  absl::Status registered = tier_.client->RegisterModel(model).status();
  EXPECT_EQ(registered.code(), absl::StatusCode::kInvalidArgument) << registered;
  EXPECT_THAT(registered.message(), HasSubstr("model.dtype"));
  ExpectOthersServed();
}

TEST_F(TierBadInputTest, LayerOutOfRange) {
  absl::Status status = SendRaw(RawRequest(Reserve(1), /*layer=*/2));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("layer"));

  // The client library refuses it before sending.
  absl::StatusOr<std::unique_ptr<Session>> session =
      tier_.client->OpenSession(TestModelId("m"), "t");
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE((*session)->Extend({7}).ok());
  absl::StatusOr<std::unique_ptr<Step>> step = (*session)->BeginStep();
  ASSERT_TRUE(step.ok()) << step.status();
  std::string q(kQHeads * kHeadDim * 2, '\0'), kv(kKvHeads * kHeadDim * 2, '\0'), out(q);
  absl::Status refused = (*step)->Attend(-1, q, kv, kv, absl::MakeSpan(out.data(), out.size()));
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("layer"));
  ExpectOthersServed();
}

TEST_F(TierBadInputTest, UnknownAndClosedSessions) {
  EXPECT_EQ(tier_.client->ResumeSession("00112233445566778899aabbccddeeff", "t").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<std::unique_ptr<Session>> session =
      tier_.client->OpenSession(TestModelId("m"), "t");
  ASSERT_TRUE(session.ok());
  const std::string id = (*session)->id();
  ASSERT_TRUE((*session)->Close().ok());
  EXPECT_EQ(tier_.client->ResumeSession(id, "t").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*session)->Extend(std::vector<int32_t>(40, 1)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ((*session)->Close().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(tier_.client->OpenSession(TestModelId("no-such-model"), "t").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(tier_.client->OpenSession(TestModelId("m"), "").status().code(),
            absl::StatusCode::kInvalidArgument);
  ExpectOthersServed();
}

// A huge string in a request comes back as a short prefix: the status message stays far below
// gRPC's metadata limit, so the caller gets the call's own code, and nothing changes.
TEST_F(TierBadInputTest, HugeStringsComeBackAsAShortPrefix) {
  const std::string huge(1 << 20, 'x');
  const absl::StatusOr<v1::GetStatsResponse> before = tier_.client->GetStats();
  ASSERT_TRUE(before.ok()) << before.status();
  auto stub = v1::SessionService::NewStub(grpc::CreateChannel(
      tier_.local->coordinator_address(), grpc::InsecureChannelCredentials()));
  auto expect_refused = [](const char* what, const grpc::Status& status, grpc::StatusCode code,
                           const std::string& message) {
    SCOPED_TRACE(what);
    EXPECT_EQ(status.error_code(), code) << status.error_message().substr(0, 200);
    EXPECT_LT(status.error_message().size(), 1024u);
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  };
  auto call = [&stub](auto method, const auto& request, auto* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ((*stub).*method)(&context, request, response);
  };
  const std::string id_message = "session_id: no open session \"xxxx";
  v1::GetSessionRequest get;
  get.set_session_id(huge);
  get.set_tenant("raw");
  v1::GetSessionResponse got;
  expect_refused("GetSession", call(&v1::SessionService::Stub::GetSession, get, &got),
                 grpc::StatusCode::NOT_FOUND, id_message);
  v1::ExtendRequest extend;
  extend.set_session_id(huge);
  extend.set_tenant("raw");
  extend.set_reserve_tokens(1);
  v1::ExtendResponse extended;
  expect_refused("Extend", call(&v1::SessionService::Stub::Extend, extend, &extended),
                 grpc::StatusCode::NOT_FOUND, id_message);
  v1::TakeOverSessionRequest take_over;
  take_over.set_session_id(huge);
  take_over.set_tenant("raw");
  v1::TakeOverSessionResponse taken;
  expect_refused("TakeOverSession",
                 call(&v1::SessionService::Stub::TakeOverSession, take_over, &taken),
                 grpc::StatusCode::NOT_FOUND, id_message);
  v1::OpenSessionRequest open;
  *open.mutable_model() = TestModelId(huge);
  open.set_tenant("raw");
  v1::OpenSessionResponse opened;
  expect_refused("OpenSession", call(&v1::SessionService::Stub::OpenSession, open, &opened),
                 grpc::StatusCode::INVALID_ARGUMENT, "model.name: expected 1..64 characters");

  const absl::StatusOr<v1::GetStatsResponse> after = tier_.client->GetStats();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*before, *after))
      << before->DebugString() << "\n" << after->DebugString();
  ExpectOthersServed();
}

TEST_F(TierBadInputTest, ForgedBlockIds) {
  v1::SequenceStep sequence = Reserve(3);
  // Another block (the bystander's or a free one), written into a lease that never held it.
  sequence.mutable_lease()->set_blocks(0, (sequence.lease().blocks(0) + 1) % 16);
  absl::Status status = SendRaw(RawRequest(sequence));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("lease"));
  ExpectOthersServed();
}

TEST_F(TierBadInputTest, LeaseOfClosedSessionCannotTouchReassignedBlocks) {
  std::string closed_id;
  const v1::SequenceStep stale = Reserve(4, &closed_id);
  v1::CloseSessionRequest close;
  close.set_session_id(closed_id);
  close.set_tenant("raw");
  ASSERT_TRUE(tier_.local->coordinator().CloseSession(close).ok());

  // A new session takes every free block, so the freed one too (free blocks are reused oldest
  // first), and writes them, leaving one slot of the last for the step below.
  absl::StatusOr<v1::GetStatsResponse> stats = tier_.client->GetStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  const int free_tokens =
      stats->models(0).blocks_free() * stats->models(0).model().block_size() - 1;
  absl::StatusOr<std::unique_ptr<Session>> opened =
      tier_.client->OpenSession(TestModelId("m"), "t");
  ASSERT_TRUE(opened.ok());
  CheckedSession owner = Checked(*std::move(opened));
  ASSERT_TRUE(CheckedStep(*tier_.client, {&owner}, {free_tokens}, rng_).ok());
  ASSERT_EQ(owner.session->context_len(), free_tokens);

  absl::Status status = SendRaw(RawRequest(stale));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("reassigned"));
  // The owner's K/V is intact.
  EXPECT_TRUE(CheckedStep(*tier_.client, {&owner}, {1}, rng_).ok());
  ExpectOthersServed();
}

TEST_F(TierBadInputTest, MoreTokensThanCapacity) {
  // 16 blocks of 4 tokens; the bystander holds 2.
  absl::StatusOr<std::unique_ptr<Session>> greedy =
      tier_.client->OpenSession(TestModelId("m"), "t");
  ASSERT_TRUE(greedy.ok());
  absl::Status status = (*greedy)->Extend(std::vector<int32_t>(65, 1)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  status = (*greedy)->Extend(std::vector<int32_t>(57, 1)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("blocks"));
  ExpectOthersServed();
  // Within what is free, it works.
  CheckedSession fits = Checked(*std::move(greedy));
  EXPECT_TRUE(CheckedStep(*tier_.client, {&fits}, {40}, rng_).ok());
}

TEST_F(TierBadInputTest, OversizedMessage) {
  LocalTierOptions options = FastTier(TestModel("m", kKvHeads, kQHeads, 2, DType::kBF16, 256));
  options.max_message_bytes = 16 << 10;
  tier_ = Tier();
  Start(options);
  // 200 tokens of q for one shard: 200 x 2 heads x 32 x 2 bytes = 25600 bytes > 16 KiB.
  absl::StatusOr<std::unique_ptr<Session>> big = tier_.client->OpenSession(TestModelId("m"), "t");
  ASSERT_TRUE(big.ok());
  CheckedSession checked = Checked(*std::move(big));
  absl::Status status = CheckedStep(*tier_.client, {&checked}, {200}, rng_);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  ExpectOthersServed();
  EXPECT_TRUE(CheckedStep(*tier_.client, {&checked}, {20}, rng_).ok());
}

}  // namespace
}  // namespace kvtier::test
