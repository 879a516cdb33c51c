// Client against a fake coordinator and fake shards: option checks, the re-prefill status, the
// deadline on every coordinator call, opening, resuming, batching and stats.
#include "client/client.h"

#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/session.h"
#include "client/step.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/error_reason.h"
#include "tests/client/fake_tier.h"

namespace kvtier {
namespace {

using test::kTenant;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() : rng_(seed_), client_(tier_.Connect()) {}

  std::unique_ptr<Session> Open() {
    absl::StatusOr<std::unique_ptr<Session>> session =
        client_->OpenSession(tier_.model.id(), kTenant);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *std::move(session) : nullptr;
  }

  const uint64_t seed_ = test::FreshSeed();
  std::mt19937_64 rng_;
  test::FakeTier tier_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, ConnectRefusesAnEmptyAddressNamingTheField) {
  ClientOptions options = tier_.options();
  options.coordinator_address = "";
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("coordinator_address"));
}

TEST_F(ClientTest, ConnectRefusesDeadlinesThatAreNotPositiveNamingTheField) {
  for (absl::Duration bad : {absl::ZeroDuration(), absl::Seconds(-1)}) {
    SCOPED_TRACE(absl::FormatDuration(bad));
    ClientOptions options = tier_.options();
    options.control_deadline = bad;
    absl::Status status = Client::Connect(options).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("control_deadline"));
    EXPECT_THAT(status.message(), Not(HasSubstr("step_deadline")));

    options = tier_.options();
    options.step_deadline = bad;
    status = Client::Connect(options).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("step_deadline"));
    EXPECT_THAT(status.message(), Not(HasSubstr("control_deadline")));
  }
}

TEST_F(ClientTest, ConnectsLazilyAndReportsADownCoordinatorAsUnavailable) {
  ClientOptions options = tier_.options();
  options.coordinator_address = "127.0.0.1:1";  // nothing listens there
  options.control_deadline = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->GetStats().status().code(), absl::StatusCode::kUnavailable);
}

// The reason decides, not the code or the message.
TEST_F(ClientTest, ReprefillIsRequiredExactlyForItsReason) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status plain(static_cast<absl::StatusCode>(code),
                             "open a new session and re-prefill");
    EXPECT_FALSE(IsReprefillRequired(plain)) << plain;
    for (v1::ErrorReason reason :
         {v1::ERROR_REASON_REPREFILL_REQUIRED, v1::ERROR_REASON_CONTEXT_CHANGED,
          v1::ERROR_REASON_WRITER_SUPERSEDED}) {
      const absl::Status status = WithReason(plain, reason);
      EXPECT_EQ(IsReprefillRequired(status), reason == v1::ERROR_REASON_REPREFILL_REQUIRED)
          << status;
    }
  }
  EXPECT_FALSE(IsReprefillRequired(absl::OkStatus()));
}

// Drives every SessionService rpc through the library and checks each call carried the
// control deadline (not none, not the step deadline).
TEST_F(ClientTest, EveryCoordinatorCallCarriesTheControlDeadline) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  tier_.coordinator.set_lease_ttl(absl::Seconds(1));  // shorter than a step: renewed
  ASSERT_TRUE(client_->RegisterModel(tier_.model).ok());
  std::unique_ptr<Session> session = Open();
  ASSERT_TRUE(test::ExtendAndStep(*session, {1, 2, 3}, rng_).ok());
  ASSERT_TRUE(session->EndTurn().ok());
  absl::StatusOr<std::unique_ptr<Session>> resumed = client_->ResumeSession(session->id(), kTenant);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE(client_->GetStats().ok());
  ASSERT_TRUE((*resumed)->Close().ok());

  const FakeSessionService::Calls calls = tier_.coordinator.calls();
  EXPECT_THAT(calls.rpcs, IsSupersetOf({"RegisterModel", "OpenSession", "RenewLease", "Extend",
                                        "EndTurn", "TakeOverSession", "CloseSession", "GetStats"}));
  ASSERT_EQ(calls.deadlines.size(), calls.rpcs.size());
  for (size_t i = 0; i < calls.rpcs.size(); ++i) {
    SCOPED_TRACE(calls.rpcs[i]);
    EXPECT_GT(calls.deadlines[i], absl::ZeroDuration());
    EXPECT_LE(calls.deadlines[i], test::kControlDeadline + test::kDeadlineRounding);
  }
}

TEST_F(ClientTest, RegisterModelReturnsTheCoordinatorsSpec) {
  absl::StatusOr<v1::ModelSpec> model = client_->RegisterModel(tier_.model);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->SerializeAsString(), tier_.model.SerializeAsString());
  const FakeSessionService::Calls calls = tier_.coordinator.calls();
  ASSERT_EQ(calls.register_model.size(), 1u);
  EXPECT_EQ(calls.register_model[0].model().SerializeAsString(), tier_.model.SerializeAsString());
}

TEST_F(ClientTest, OpenSessionNamesModelAndTenantAndHoldsNothingYet) {
  std::unique_ptr<Session> session = Open();
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->id(), "session-1");
  EXPECT_EQ(session->tenant(), kTenant);
  EXPECT_EQ(session->model().id().name(), "toy");
  EXPECT_EQ(session->context_len(), 0);
  EXPECT_EQ(session->pending_tokens(), 0);
  const FakeSessionService::Calls calls = tier_.coordinator.calls();
  ASSERT_EQ(calls.open_session.size(), 1u);
  EXPECT_EQ(calls.open_session[0].model().name(), "toy");
  EXPECT_EQ(calls.open_session[0].model().version(), "1");
  EXPECT_EQ(calls.open_session[0].tenant(), kTenant);
}

TEST_F(ClientTest, CoordinatorErrorsKeepTheirCodeAndNameTheCall) {
  v1::ModelId unknown;
  unknown.set_name("no-such-model");
  absl::Status status = client_->OpenSession(unknown, kTenant).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("OpenSession"));

  tier_.coordinator.FailNext("GetStats", grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x"));
  status = client_->GetStats().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("GetStats"));
}

TEST_F(ClientTest, GetStatsReturnsTheCoordinatorsAnswer) {
  std::unique_ptr<Session> session = Open();
  absl::StatusOr<v1::GetStatsResponse> stats = client_->GetStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->shards(), 2);
  ASSERT_EQ(stats->models_size(), 1);
  EXPECT_EQ(stats->models(0).model().id().name(), "toy");
  EXPECT_EQ(stats->models(0).sessions(), 1);
}

// Another client takes the session over from what the tier holds, and writes as the new
// writer; the earlier writer's next commit is refused.
TEST_F(ClientTest, ResumeSessionTakesTheSessionOver) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_));
  std::unique_ptr<Session> first = Open();
  ASSERT_TRUE(test::ExtendAndStep(*first, {5, 6, 7}, rng_).ok());
  ASSERT_TRUE(first->EndTurn().ok());

  std::unique_ptr<Client> other = tier_.Connect();
  absl::StatusOr<std::unique_ptr<Session>> resumed = other->ResumeSession(first->id(), kTenant);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->id(), first->id());
  EXPECT_EQ((*resumed)->context_len(), 3);
  FakeSessionService::Calls calls = tier_.coordinator.calls();
  ASSERT_EQ(calls.take_over_session.size(), 1u);
  EXPECT_EQ(calls.take_over_session[0].session_id(), first->id());
  EXPECT_EQ(calls.take_over_session[0].tenant(), kTenant);

  ASSERT_TRUE(test::ExtendAndStep(**resumed, {8, 9}, rng_).ok());  // past the leased block
  calls = tier_.coordinator.calls();
  ASSERT_EQ(calls.extend.size(), 2u);
  EXPECT_EQ(calls.extend[1].writer(), calls.extend[0].writer() + 1);  // the take-over's
  EXPECT_EQ(calls.extend[1].expected_context_len(), 3);

  const absl::Status superseded = first->EndTurn();
  EXPECT_EQ(superseded.code(), absl::StatusCode::kAborted) << superseded;
  EXPECT_EQ(ReasonOf(superseded), v1::ERROR_REASON_WRITER_SUPERSEDED) << superseded;
}

TEST_F(ClientTest, BeginStepRefusesNoSessions) {
  absl::Status status = client_->BeginStep({}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("sessions"));
}

// A batch that cannot begin names the session at fault and drops every session's tokens.
TEST_F(ClientTest, BeginStepNamesASessionWithoutTokensAndDropsTheBatch) {
  std::unique_ptr<Session> a = Open();
  std::unique_ptr<Session> b = Open();
  ASSERT_TRUE(a->Extend({1, 2}).ok());
  Session* batch[] = {a.get(), b.get()};
  absl::Status status = client_->BeginStep(batch).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("sessions[1]"));
  EXPECT_EQ(a->pending_tokens(), 0);
  EXPECT_EQ(a->context_len(), 0);
}

}  // namespace
}  // namespace kvtier
