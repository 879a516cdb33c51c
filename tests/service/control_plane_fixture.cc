#include "tests/service/control_plane_fixture.h"

#include <utility>

#include "absl/random/random.h"
#include "proto/wire/error_reason.h"
#include "tests/service/tier_harness.h"

namespace kvtier::test {
namespace {

CoordinatorOptions Options() {
  CoordinatorOptions options;
  options.heartbeat_timeout = absl::Hours(1);
  options.session_idle_timeout = absl::Minutes(10);
  return options;
}

}  // namespace

std::vector<int32_t> RandomTokens(int count) {
  absl::BitGen gen;
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = absl::Uniform<int32_t>(gen, 0, 1 << 20);
  return tokens;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<int32_t> Head(const std::vector<int32_t>& tokens, int count) {
  return std::vector<int32_t>(tokens.begin(), tokens.begin() + count);
}

bool IsInvalidated(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition &&
         ReasonOf(status) == v1::ERROR_REASON_INVALIDATED;
}

ControlPlaneTest::ControlPlaneTest() : harness_(Options()), coordinator_(harness_.coordinator()) {
  EXPECT_TRUE(coordinator_.RegisterModel(Model()).ok());
  harness_.JoinShard("a:1");
  harness_.JoinShard("b:1");
}

v1::ModelSpec ControlPlaneTest::Model(const std::string& version) {
  v1::ModelSpec model = TestModel("m", 2, 4, 2, DType::kBF16, kNumBlocks);
  model.mutable_id()->set_version(version);
  return model;
}

v1::ModelId ControlPlaneTest::ModelId(const std::string& version) { return Model(version).id(); }

SessionDriver ControlPlaneTest::Open(const std::string& tenant, const v1::ModelId& model) {
  absl::StatusOr<SessionDriver> session = SessionDriver::Open(coordinator_, model, tenant);
  EXPECT_TRUE(session.ok()) << session.status();
  return *std::move(session);
}

SessionDriver ControlPlaneTest::Prefilled(const std::vector<int32_t>& prompt,
                                          const std::string& tenant, const v1::ModelId& model) {
  SessionDriver session = Open(tenant, model);
  absl::StatusOr<int32_t> cached = session.Prefill(prompt);
  EXPECT_TRUE(cached.ok()) << cached.status();
  return session;
}

int32_t ControlPlaneTest::CachedFor(const std::vector<int32_t>& prompt, const std::string& tenant,
                                    const v1::ModelId& model) {
  SessionDriver session = Open(tenant, model);
  absl::StatusOr<v1::ExtendResponse> matched = session.Prompt(prompt);
  EXPECT_TRUE(matched.ok()) << matched.status();
  EXPECT_TRUE(session.Close().ok());
  return matched.ok() ? matched->cached_tokens() : -1;
}

absl::StatusOr<v1::InvalidationResult> ControlPlaneTest::InvalidateSession(
    const SessionDriver& session, const std::string& tenant) {
  v1::InvalidateSessionRequest request;
  request.set_session_id(session.id());
  request.set_tenant(tenant);
  return CallNow(coordinator_, &Coordinator::InvalidateSession, request);
}

absl::StatusOr<v1::InvalidationResult> ControlPlaneTest::InvalidatePrefix(
    const std::vector<int32_t>& tokens, const std::string& tenant, const v1::ModelId& model) {
  v1::InvalidatePrefixRequest request;
  *request.mutable_model() = model;
  request.set_tenant(tenant);
  request.mutable_tokens()->Add(tokens.begin(), tokens.end());
  return CallNow(coordinator_, &Coordinator::InvalidatePrefix, request);
}

absl::StatusOr<v1::RetireModelResponse> ControlPlaneTest::Retire(const v1::ModelId& model,
                                                                 v1::RetireMode mode) {
  v1::RetireModelRequest request;
  *request.mutable_model() = model;
  request.set_mode(mode);
  return CallNow(coordinator_, &Coordinator::RetireModel, request);
}

}  // namespace kvtier::test
