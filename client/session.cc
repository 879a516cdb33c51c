#include "client/session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/client_internal.h"
#include "client/step.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/time_convert.h"

namespace kvtier {

Session::Session(Client* client, std::string tenant, v1::SessionInfo info, v1::WriterGrant grant)
    : client_(client),
      tenant_(std::move(tenant)),
      info_(std::move(info)),
      grant_(std::move(grant)),
      committed_len_(info_.context_len()),
      written_len_(info_.context_len()) {}

template <typename Request>
Request Session::CommitRequest() const {
  Request request;
  request.set_session_id(id());
  request.set_tenant(tenant_);
  request.set_writer(grant_.writer());
  request.set_expected_context_len(committed_len_);
  request.mutable_tokens()->Add(written_.begin(), written_.end());
  return request;
}

int32_t Session::leased_tokens() const {
  return lease().blocks_size() * info_.model().block_size();
}

absl::StatusOr<int32_t> Session::Extend(absl::Span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("tokens: expected at least one");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens[", i, "]: expected a token id >= 0, got ", tokens[i]));
    }
  }
  const int32_t block_size = info_.model().block_size();
  // A prompt that could start with a cached block: the coordinator looks it up.
  const bool lookup = pending_.empty() && written_.empty() && written_len_ % block_size == 0 &&
                      static_cast<int64_t>(tokens.size()) > block_size;
  const int64_t wanted = int64_t{written_len_} + pending_tokens() + tokens.size();
  int32_t cached = 0;
  if (lookup || wanted > leased_tokens()) {
    auto request = CommitRequest<v1::ExtendRequest>();
    if (lookup) {
      request.mutable_next_tokens()->Add(tokens.begin(), tokens.end());
    } else {
      request.set_reserve_tokens(static_cast<int32_t>(wanted - written_len_));
    }
    absl::StatusOr<v1::ExtendResponse> response = client_->connection().Extend(request);
    if (!response.ok()) return response.status();
    cached = response->cached_tokens();
    committed_len_ = response->context_len();
    written_len_ = committed_len_;
    written_.clear();
    *grant_.mutable_lease() = std::move(*response->mutable_lease());
  }
  pending_.insert(pending_.end(), tokens.begin() + cached, tokens.end());
  turn_cached_ += cached;
  return cached;
}

absl::StatusOr<std::unique_ptr<Step>> Session::BeginStep() {
  Session* self = this;
  return client_->BeginStep(absl::MakeConstSpan(&self, 1));
}

absl::Status Session::PrepareStep() {
  if (pending_.empty()) {
    return absl::FailedPreconditionError("no tokens added by Extend since the last step");
  }
  // The lease must outlive the step: renew it when it may not.
  const absl::Time expires = FromProtoTimestamp(lease().expires_at());
  if (expires > absl::Now() + client_->options().step_deadline) return absl::OkStatus();
  return RenewLease();
}

absl::Status Session::RenewLease() {
  v1::RenewLeaseRequest request;
  request.set_session_id(id());
  request.set_tenant(tenant_);
  request.set_writer(grant_.writer());
  absl::StatusOr<v1::RenewLeaseResponse> response = client_->connection().RenewLease(request);
  if (!response.ok()) return response.status();
  if (response->context_len() != committed_len_) {
    return WithReason(
        absl::AbortedError(absl::StrCat("session ", id(), " holds ", response->context_len(),
                                        " tokens, this client committed ", committed_len_,
                                        " (another client advanced it?)")),
        v1::ERROR_REASON_CONTEXT_CHANGED);
  }
  *grant_.mutable_lease() = std::move(*response->mutable_lease());
  return absl::OkStatus();
}

void Session::StepWritten() {
  written_.insert(written_.end(), pending_.begin(), pending_.end());
  written_len_ += pending_tokens();
  turn_computed_ += pending_tokens();
  pending_.clear();
}

absl::Status Session::Explain(const absl::Status& failure) {
  v1::GetSessionRequest request;
  request.set_session_id(id());
  request.set_tenant(tenant_);
  const absl::Status status = client_->connection().GetSession(request).status();
  return IsReprefillRequired(status) ? status : failure;
}

absl::Status Session::EndTurn(absl::Duration retain_for) {
  if (!pending_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("EndTurn: ", pending_.size(), " tokens added by Extend were never stepped"));
  }
  auto request = CommitRequest<v1::EndTurnRequest>();
  *request.mutable_retain_for() = ToProtoDuration(retain_for);
  absl::StatusOr<v1::EndTurnResponse> response = client_->connection().EndTurn(request);
  if (!response.ok()) return response.status();
  committed_len_ = response->context_len();
  written_.clear();
  turn_cached_ = 0;
  turn_computed_ = 0;
  return absl::OkStatus();
}

absl::Status Session::CommitWritten() {
  absl::StatusOr<v1::ExtendResponse> response =
      client_->connection().Extend(CommitRequest<v1::ExtendRequest>());
  if (!response.ok()) return response.status();
  committed_len_ = response->context_len();
  written_.clear();
  *grant_.mutable_lease() = std::move(*response->mutable_lease());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Session>> Session::Fork() {
  if (!pending_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Fork: ", pending_.size(), " tokens added by Extend were never stepped"));
  }
  if (!written_.empty()) {
    if (absl::Status status = CommitWritten(); !status.ok()) return status;
  }
  return client_->ForkSession(id(), tenant_);
}

absl::Status Session::Close() {
  if (!written_.empty()) {
    // Commit what steps wrote first, so the session's full blocks stay matchable. NOTE: only
    // sharing gains from it: a session that cannot commit (lost, taken over) closes all the
    // same.
    CommitWritten().IgnoreError();
    written_.clear();
  }
  v1::CloseSessionRequest request;
  request.set_session_id(id());
  request.set_tenant(tenant_);
  return client_->connection().CloseSession(request).status();
}

}  // namespace kvtier
