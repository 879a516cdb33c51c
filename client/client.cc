#include "client/client.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client_internal.h"
#include "client/session.h"
#include "client/step.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/model_spec.h"

namespace kvtier {
namespace {

absl::Status CheckDeadline(absl::string_view field, absl::Duration deadline) {
  if (deadline > absl::ZeroDuration()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": expected > 0, got ", absl::FormatDuration(deadline)));
}

}  // namespace

bool IsReprefillRequired(const absl::Status& status) {
  const v1::ErrorReason reason = ReasonOf(status);
  return reason == v1::ERROR_REASON_REPREFILL_REQUIRED || reason == v1::ERROR_REASON_INVALIDATED;
}

bool IsInvalidated(const absl::Status& status) {
  return ReasonOf(status) == v1::ERROR_REASON_INVALIDATED;
}

Client::Client(const ClientOptions& options)
    : connection_(std::make_unique<TierConnection>(options)) {}

Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.coordinator_address.empty()) {
    return absl::InvalidArgumentError("coordinator_address: expected host:port, got \"\"");
  }
  if (absl::Status status = CheckDeadline("control_deadline", options.control_deadline);
      !status.ok()) {
    return status;
  }
  if (absl::Status status = CheckDeadline("step_deadline", options.step_deadline); !status.ok()) {
    return status;
  }
  return absl::WrapUnique(new Client(options));
}

const ClientOptions& Client::options() const { return connection_->options(); }

absl::StatusOr<v1::ModelSpec> Client::RegisterModel(const v1::ModelSpec& model) {
  v1::RegisterModelRequest request;
  *request.mutable_model() = model;
  absl::StatusOr<v1::RegisterModelResponse> response = connection_->RegisterModel(request);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_model());
}

absl::StatusOr<std::unique_ptr<Session>> Client::OpenSession(const v1::ModelId& model,
                                                             const std::string& tenant) {
  v1::OpenSessionRequest request;
  *request.mutable_model() = model;
  request.set_tenant(tenant);
  return SessionFrom(connection_->OpenSession(request), tenant);
}

absl::StatusOr<std::unique_ptr<Session>> Client::ResumeSession(const std::string& session_id,
                                                               const std::string& tenant) {
  v1::TakeOverSessionRequest request;
  request.set_session_id(session_id);
  request.set_tenant(tenant);
  return SessionFrom(connection_->TakeOverSession(request), tenant);
}

template <typename Response>
absl::StatusOr<std::unique_ptr<Session>> Client::SessionFrom(absl::StatusOr<Response> response,
                                                             const std::string& tenant) {
  if (!response.ok()) return response.status();
  return absl::WrapUnique(new Session(this, tenant, std::move(*response->mutable_session()),
                                      std::move(*response->mutable_grant())));
}

absl::StatusOr<std::unique_ptr<Session>> Client::ForkSession(const std::string& session_id,
                                                             const std::string& tenant) {
  v1::ForkSessionRequest request;
  request.set_session_id(session_id);
  request.set_tenant(tenant);
  return SessionFrom(connection_->ForkSession(request), tenant);
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
  return connection_->GetStats(v1::GetStatsRequest());
}

absl::StatusOr<v1::InvalidationResult> Client::InvalidateSession(const std::string& session_id,
                                                                 const std::string& tenant) {
  v1::InvalidateSessionRequest request;
  request.set_session_id(session_id);
  request.set_tenant(tenant);
  absl::StatusOr<v1::InvalidateSessionResponse> response =
      connection_->InvalidateSession(request);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_result());
}

absl::StatusOr<v1::InvalidationResult> Client::InvalidatePrefix(
    const v1::ModelId& model, const std::string& tenant, absl::Span<const int32_t> tokens) {
  v1::InvalidatePrefixRequest request;
  *request.mutable_model() = model;
  request.set_tenant(tenant);
  request.mutable_tokens()->Add(tokens.begin(), tokens.end());
  absl::StatusOr<v1::InvalidatePrefixResponse> response = connection_->InvalidatePrefix(request);
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_result());
}

}  // namespace kvtier
