#include "client/client.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/session.h"
#include "client/step.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/status_convert.h"

namespace kvtier {
namespace {

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, int max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

bool IsReprefillRequired(const absl::Status& status) {
  return ReasonOf(status) == v1::ERROR_REASON_REPREFILL_REQUIRED;
}

Client::Client(const ClientOptions& options)
    : options_(options),
      coordinator_(v1::SessionService::NewStub(
          NewChannel(options.coordinator_address, options.max_message_bytes))) {}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.coordinator_address.empty()) {
    return absl::InvalidArgumentError("coordinator_address: expected host:port, got \"\"");
  }
  if (options.control_deadline <= absl::ZeroDuration() ||
      options.step_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("control_deadline, step_deadline: expected > 0");
  }
  return absl::WrapUnique(new Client(options));
}

std::unique_ptr<grpc::ClientContext> Client::ControlContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.control_deadline));
  return context;
}

std::shared_ptr<v1::AttentionService::Stub> Client::Shard(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<v1::AttentionService::Stub>& stub = shards_[address];
  if (stub == nullptr) {
    stub = v1::AttentionService::NewStub(NewChannel(address, options_.max_message_bytes));
  }
  return stub;
}

void Client::ForgetShard(const std::string& address) {
  absl::MutexLock lock(&mu_);
  shards_.erase(address);
}

absl::StatusOr<v1::ModelSpec> Client::RegisterModel(const v1::ModelSpec& model) {
  v1::RegisterModelRequest request;
  *request.mutable_model() = model;
  v1::RegisterModelResponse response;
  if (grpc::Status status = coordinator_->RegisterModel(ControlContext().get(), request, &response);
      !status.ok()) {
    return FromGrpcStatus(status, "RegisterModel");
  }
  return response.model();
}

absl::StatusOr<std::unique_ptr<Session>> Client::OpenSession(const v1::ModelId& model,
                                                             const std::string& tenant) {
  v1::OpenSessionRequest request;
  *request.mutable_model() = model;
  request.set_tenant(tenant);
  v1::OpenSessionResponse response;
  grpc::Status status = coordinator_->OpenSession(ControlContext().get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status, "OpenSession");
  return std::make_unique<Session>(this, tenant, std::move(*response.mutable_session()),
                                   std::move(*response.mutable_grant()));
}

absl::StatusOr<std::unique_ptr<Session>> Client::ResumeSession(const std::string& session_id,
                                                               const std::string& tenant) {
  v1::TakeOverSessionRequest request;
  request.set_session_id(session_id);
  request.set_tenant(tenant);
  v1::TakeOverSessionResponse response;
  grpc::Status status = coordinator_->TakeOverSession(ControlContext().get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status, "TakeOverSession");
  return std::make_unique<Session>(this, tenant, std::move(*response.mutable_session()),
                                   std::move(*response.mutable_grant()));
}

absl::StatusOr<std::unique_ptr<Step>> Client::BeginStep(absl::Span<Session* const> sessions) {
  absl::StatusOr<std::unique_ptr<Step>> step = OpenStep(sessions);
  if (!step.ok()) {
    for (Session* session : sessions) session->DropPending();
  }
  return step;
}

absl::StatusOr<std::unique_ptr<Step>> Client::OpenStep(absl::Span<Session* const> sessions) {
  if (sessions.empty()) return absl::InvalidArgumentError("sessions: expected at least one");
  for (size_t i = 0; i < sessions.size(); ++i) {
    if (!SameModel(sessions[i]->model().id(), sessions[0]->model().id())) {
      return absl::InvalidArgumentError(
          absl::StrCat("sessions[", i, "]: model ", ModelIdString(sessions[i]->model().id()),
                       ", the step's is ", ModelIdString(sessions[0]->model().id())));
    }
    if (absl::Status status = sessions[i]->PrepareStep(); !status.ok()) {
      return Prefixed(absl::StrCat("sessions[", i, "]: "), status);
    }
  }
  auto step = absl::WrapUnique(new Step(this, {sessions.begin(), sessions.end()}));
  if (absl::Status status = step->Open(); !status.ok()) return status;
  return step;
}

absl::StatusOr<v1::GetStatsResponse> Client::GetStats() {
  v1::GetStatsResponse response;
  grpc::Status status =
      coordinator_->GetStats(ControlContext().get(), v1::GetStatsRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status, "GetStats");
  return response;
}

}  // namespace kvtier
