#include "client/session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/client_internal.h"
#include "client/step.h"

namespace kvtier {

Session::Session(Client* client, std::string tenant, v1::SessionInfo info)
    : client_(client),
      tenant_(std::move(tenant)),
      info_(std::move(info)),
      committed_len_(info_.context_len()),
      written_len_(info_.context_len()) {}

int32_t Session::leased_tokens() const {
  return info_.lease().blocks_size() * info_.model().block_size();
}

absl::Status Session::Extend(absl::Span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("tokens: expected at least one");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens[", i, "]: expected a token id >= 0, got ", tokens[i]));
    }
  }
  const int64_t wanted = int64_t{written_len_} + pending_tokens() + tokens.size();
  if (wanted > leased_tokens()) {
    v1::ExtendRequest request;
    request.set_session_id(id());
    request.set_tenant(tenant_);
    request.set_expected_context_len(committed_len_);
    request.mutable_tokens()->Add(written_.begin(), written_.end());
    request.set_reserve_tokens(static_cast<int32_t>(wanted - written_len_));
    request.set_writer(info_.writer());
    absl::StatusOr<v1::ExtendResponse> response = client_->connection().Extend(request);
    if (!response.ok()) return response.status();
    committed_len_ = response->context_len();
    written_.clear();
    *info_.mutable_lease() = std::move(*response->mutable_lease());
  }
  pending_.insert(pending_.end(), tokens.begin(), tokens.end());
  return absl::OkStatus();
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
  const absl::Time expires = absl::FromUnixMicros(info_.lease().expires_unix_micros());
  if (expires > absl::Now() + client_->options().step_deadline) return absl::OkStatus();
  absl::StatusOr<v1::SessionInfo> info = Fetch(info_.writer());
  if (!info.ok()) return info.status();
  if (info->context_len() != committed_len_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session ", id(), " holds ", info->context_len(), " tokens, this client committed ",
        committed_len_, " (another client advanced it?)"));
  }
  info_ = *std::move(info);
  return absl::OkStatus();
}

void Session::StepWritten() {
  written_.insert(written_.end(), pending_.begin(), pending_.end());
  written_len_ += pending_tokens();
  pending_.clear();
}

absl::Status Session::Explain(const absl::Status& failure) {
  absl::Status status = Fetch(/*writer=*/0).status();
  return IsReprefillRequired(status) ? status : failure;
}

absl::StatusOr<v1::SessionInfo> Session::Fetch(uint64_t writer) {
  v1::GetSessionRequest request;
  request.set_session_id(id());
  request.set_tenant(tenant_);
  request.set_writer(writer);
  return client_->connection().GetSession(request);
}

absl::Status Session::EndTurn(absl::Duration retain_for) {
  if (!pending_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("EndTurn: ", pending_.size(), " tokens added by Extend were never stepped"));
  }
  v1::EndTurnRequest request;
  request.set_session_id(id());
  request.set_tenant(tenant_);
  request.set_expected_context_len(committed_len_);
  request.mutable_tokens()->Add(written_.begin(), written_.end());
  request.set_retain_for_seconds(absl::ToDoubleSeconds(retain_for));
  request.set_writer(info_.writer());
  absl::StatusOr<v1::EndTurnResponse> response = client_->connection().EndTurn(request);
  if (!response.ok()) return response.status();
  committed_len_ = response->context_len();
  written_.clear();
  return absl::OkStatus();
}

absl::Status Session::Close() {
  v1::CloseSessionRequest request;
  request.set_session_id(id());
  request.set_tenant(tenant_);
  return client_->connection().CloseSession(request).status();
}

}  // namespace kvtier
