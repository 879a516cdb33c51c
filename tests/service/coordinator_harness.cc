#include "tests/service/coordinator_harness.h"

#include <utility>

#include "gtest/gtest.h"
#include "proto/wire/time_convert.h"

namespace kvtier::test {
namespace {

CoordinatorOptions WithFakes(CoordinatorOptions options, const absl::Time* now,
                             std::shared_ptr<ShardControl> shard_control) {
  options.clock = [now] { return *now; };
  if (options.shard_control == nullptr) options.shard_control = std::move(shard_control);
  return options;
}

}  // namespace

CoordinatorHarness::CoordinatorHarness(CoordinatorOptions options)
    : coordinator_(WithFakes(std::move(options), &now_, shard_control_)) {}

uint64_t CoordinatorHarness::JoinShard(const std::string& address, int64_t capacity) {
  v1::RegisterShardRequest request;
  request.set_address(address);
  request.set_capacity_bytes(capacity);
  absl::StatusOr<v1::ShardAssignment> assignment = coordinator_.RegisterShard(request);
  EXPECT_TRUE(assignment.ok()) << assignment.status();
  shards_.push_back(assignment->shard_id());
  Beat(assignment->shard_id());
  return assignment->shard_id();
}

v1::ShardAssignment CoordinatorHarness::Beat(uint64_t shard_id) {
  v1::HeartbeatRequest request;
  request.set_shard_id(shard_id);
  absl::StatusOr<v1::ShardAssignment> assignment = coordinator_.Heartbeat(request);
  EXPECT_TRUE(assignment.ok()) << assignment.status();
  for (const v1::HostedRange& range : assignment->ranges()) {
    request.add_ready_incarnations(range.incarnation());
  }
  return *coordinator_.Heartbeat(request);
}

void CoordinatorHarness::Advance(absl::Duration duration) {
  now_ += duration;
  for (uint64_t shard : shards_) Beat(shard);
  coordinator_.Sweep();
}

absl::StatusOr<SessionDriver> SessionDriver::Open(Coordinator& coordinator,
                                                  const v1::ModelId& model,
                                                  const std::string& tenant) {
  v1::OpenSessionRequest request;
  *request.mutable_model() = model;
  request.set_tenant(tenant);
  absl::StatusOr<v1::OpenSessionResponse> opened = coordinator.OpenSession(request);
  if (!opened.ok()) return opened.status();
  return SessionDriver(&coordinator, tenant, opened->session(), opened->grant());
}

SessionDriver::SessionDriver(Coordinator* coordinator, std::string tenant,
                             const v1::SessionInfo& session, const v1::WriterGrant& grant)
    : coordinator_(coordinator),
      tenant_(std::move(tenant)),
      id_(session.session_id()),
      writer_(grant.writer()),
      context_len_(session.context_len()),
      lease_(grant.lease()) {}

absl::StatusOr<v1::ExtendResponse> SessionDriver::Extend(const std::vector<int32_t>& tokens,
                                                         const std::vector<int32_t>& next_tokens,
                                                         int32_t reserve_tokens) {
  v1::ExtendRequest request;
  request.set_session_id(id_);
  request.set_tenant(tenant_);
  request.set_writer(writer_);
  request.set_expected_context_len(context_len_);
  request.mutable_tokens()->Add(tokens.begin(), tokens.end());
  request.mutable_next_tokens()->Add(next_tokens.begin(), next_tokens.end());
  request.set_reserve_tokens(reserve_tokens);
  absl::StatusOr<v1::ExtendResponse> response = coordinator_->Extend(request);
  if (response.ok()) {
    context_len_ = response->context_len();
    lease_ = response->lease();
  }
  return response;
}

absl::StatusOr<v1::ExtendResponse> SessionDriver::Prompt(const std::vector<int32_t>& next_tokens,
                                                         int32_t reserve_tokens) {
  return Extend({}, next_tokens, reserve_tokens);
}

absl::StatusOr<v1::ExtendResponse> SessionDriver::Commit(const std::vector<int32_t>& tokens,
                                                         int32_t reserve_tokens) {
  return Extend(tokens, {}, reserve_tokens);
}

absl::StatusOr<int32_t> SessionDriver::Prefill(const std::vector<int32_t>& prompt) {
  absl::StatusOr<v1::ExtendResponse> matched = Prompt(prompt);
  if (!matched.ok()) return matched.status();
  const std::vector<int32_t> rest(prompt.begin() + matched->cached_tokens(), prompt.end());
  absl::StatusOr<v1::ExtendResponse> committed = Commit(rest);
  if (!committed.ok()) return committed.status();
  return matched->cached_tokens();
}

absl::StatusOr<v1::EndTurnResponse> SessionDriver::EndTurn(const std::vector<int32_t>& tokens,
                                                           absl::Duration retain_for) {
  v1::EndTurnRequest request;
  request.set_session_id(id_);
  request.set_tenant(tenant_);
  request.set_writer(writer_);
  request.set_expected_context_len(context_len_);
  request.mutable_tokens()->Add(tokens.begin(), tokens.end());
  *request.mutable_retain_for() = ToProtoDuration(retain_for);
  absl::StatusOr<v1::EndTurnResponse> response =
      CallNow(*coordinator_, &Coordinator::EndTurn, request);
  if (response.ok()) context_len_ = response->context_len();
  return response;
}

absl::Status SessionDriver::Close() {
  v1::CloseSessionRequest request;
  request.set_session_id(id_);
  request.set_tenant(tenant_);
  return coordinator_->CloseSession(request);
}

absl::Status SessionDriver::TakeOver() {
  v1::TakeOverSessionRequest request;
  request.set_session_id(id_);
  request.set_tenant(tenant_);
  absl::StatusOr<v1::TakeOverSessionResponse> response = coordinator_->TakeOverSession(request);
  if (!response.ok()) return response.status();
  writer_ = response->grant().writer();
  context_len_ = response->session().context_len();
  lease_ = response->grant().lease();
  return absl::OkStatus();
}

absl::StatusOr<SessionDriver> SessionDriver::Fork() {
  v1::ForkSessionRequest request;
  request.set_session_id(id_);
  request.set_tenant(tenant_);
  absl::StatusOr<v1::ForkSessionResponse> forked =
      CallNow(*coordinator_, &Coordinator::ForkSession, request);
  if (!forked.ok()) return forked.status();
  return SessionDriver(coordinator_, tenant_, forked->session(), forked->grant());
}

}  // namespace kvtier::test
