#include "tests/client/fake_session_service.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/server_builder.h"
#include "proto/wire/status_convert.h"
#include "proto/wire/time_convert.h"

namespace kvtier {
namespace {

// Room for any tensor a test sends.
constexpr int kFakeMessageBytes = 64 << 20;

}  // namespace

FakeSessionService::FakeSessionService(v1::ModelSpec model, std::vector<v1::ShardEndpoint> shards)
    : model_(std::move(model)), shards_(std::move(shards)) {
  StartedServer started = StartServer("fake", "127.0.0.1:0", kFakeMessageBytes, {this, &admin_}).value();
  server_ = std::move(started.server);
  address_ = absl::StrCat("127.0.0.1:", started.port);
}

FakeSessionService::~FakeSessionService() { server_->Shutdown(); }

void FakeSessionService::FailNext(const std::string& rpc, grpc::Status status) {
  absl::MutexLock lock(&mu_);
  failures_[rpc].push_back(std::move(status));
}

void FakeSessionService::AdvanceSession(const std::string& session_id, int32_t tokens) {
  absl::MutexLock lock(&mu_);
  std::vector<int32_t>& committed = sessions_.at(session_id).tokens;
  committed.insert(committed.end(), tokens, 0);
}

void FakeSessionService::CacheNext(int32_t tokens) {
  absl::MutexLock lock(&mu_);
  cache_next_ = tokens;
}

void FakeSessionService::set_lease_ttl(absl::Duration ttl) {
  absl::MutexLock lock(&mu_);
  lease_ttl_ = ttl;
}

FakeSessionService::Calls FakeSessionService::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<int32_t> FakeSessionService::committed(const std::string& session_id) const {
  absl::MutexLock lock(&mu_);
  return sessions_.at(session_id).tokens;
}

grpc::Status FakeSessionService::Record(const std::string& rpc,
                                        const grpc::ServerContext& context) {
  calls_.rpcs.push_back(rpc);
  calls_.deadlines.push_back(context.deadline() == std::chrono::system_clock::time_point::max()
                                 ? absl::InfiniteDuration()
                                 : absl::FromChrono(context.deadline()) - absl::Now());
  std::deque<grpc::Status>& failures = failures_[rpc];
  if (failures.empty()) return grpc::Status::OK;
  grpc::Status failure = std::move(failures.front());
  failures.pop_front();
  return failure;
}

grpc::Status FakeSessionService::Find(const std::string& session_id, const std::string& tenant,
                                      SessionState** session) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second.tenant != tenant) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("fake coordinator: no session ", session_id));
  }
  *session = &it->second;
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::Commit(SessionState& session, uint64_t writer,
                                        int32_t expected_context_len,
                                        const google::protobuf::RepeatedField<int32_t>& tokens) {
  if (writer != session.writer) {
    return ToGrpcStatus(
        WithReason(absl::AbortedError(absl::StrCat("fake coordinator: writer ", writer,
                                                   " is not the current ", session.writer)),
                   v1::ERROR_REASON_WRITER_SUPERSEDED));
  }
  if (expected_context_len != static_cast<int32_t>(session.tokens.size())) {
    return ToGrpcStatus(
        WithReason(absl::AbortedError(absl::StrCat("fake coordinator: expected_context_len ",
                                                   expected_context_len, ", the session holds ",
                                                   session.tokens.size())),
                   v1::ERROR_REASON_CONTEXT_CHANGED));
  }
  session.tokens.insert(session.tokens.end(), tokens.begin(), tokens.end());
  return grpc::Status::OK;
}

v1::BlockLease FakeSessionService::Lease(const std::string& session_id,
                                         const SessionState& session) {
  v1::BlockLease lease;
  lease.set_session_id(session_id);
  *lease.mutable_model() = model_.id();
  for (int block = 0; block < session.blocks; ++block) {
    lease.add_blocks(block);
    lease.add_generations(1);
  }
  for (const v1::ShardEndpoint& shard : shards_) {
    lease.add_shard_incarnations(shard.incarnation());
  }
  *lease.mutable_expires_at() = ToProtoTimestamp(absl::Now() + lease_ttl_);
  lease.set_signature(absl::StrCat("lease-", ++leases_granted_));
  return lease;
}

v1::WriterGrant FakeSessionService::Grant(const std::string& session_id,
                                          const SessionState& session) {
  v1::WriterGrant grant;
  grant.set_writer(session.writer);
  *grant.mutable_lease() = Lease(session_id, session);
  return grant;
}

v1::SessionInfo FakeSessionService::Describe(const std::string& session_id,
                                             const SessionState& session) const {
  v1::SessionInfo info;
  info.set_session_id(session_id);
  *info.mutable_model() = model_;
  info.set_context_len(static_cast<int32_t>(session.tokens.size()));
  for (const v1::ShardEndpoint& shard : shards_) *info.add_shards() = shard;
  return info;
}

grpc::Status FakeSessionService::RegisterModel(const grpc::ServerContext& context,
                                               const v1::RegisterModelRequest& request,
                                               v1::RegisterModelResponse* response) {
  absl::MutexLock lock(&mu_);
  calls_.register_model.push_back(request);
  if (grpc::Status status = Record("RegisterModel", context); !status.ok()) return status;
  *response->mutable_model() = request.model();
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::OpenSession(grpc::ServerContext* context,
                                             const v1::OpenSessionRequest* request,
                                             v1::OpenSessionResponse* response) {
  absl::MutexLock lock(&mu_);
  calls_.open_session.push_back(*request);
  if (grpc::Status status = Record("OpenSession", *context); !status.ok()) return status;
  if (!SameModel(request->model(), model_.id())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("fake coordinator: no model ",
                                                                  ModelIdString(request->model())));
  }
  const std::string id = absl::StrCat("session-", ++sessions_opened_);
  SessionState& session = sessions_[id];
  session.tenant = request->tenant();
  session.writer = ++writers_granted_;
  *response->mutable_session() = Describe(id, session);
  *response->mutable_grant() = Grant(id, session);
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::GetSession(grpc::ServerContext* context,
                                            const v1::GetSessionRequest* request,
                                            v1::GetSessionResponse* response) {
  absl::MutexLock lock(&mu_);
  SessionState* session = nullptr;
  if (grpc::Status status =
          ArriveAt("GetSession", *context, *request, calls_.get_session, &session);
      !status.ok()) {
    return status;
  }
  *response->mutable_session() = Describe(request->session_id(), *session);
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::TakeOverSession(grpc::ServerContext* context,
                                                 const v1::TakeOverSessionRequest* request,
                                                 v1::TakeOverSessionResponse* response) {
  absl::MutexLock lock(&mu_);
  SessionState* session = nullptr;
  if (grpc::Status status =
          ArriveAt("TakeOverSession", *context, *request, calls_.take_over_session, &session);
      !status.ok()) {
    return status;
  }
  session->writer = ++writers_granted_;
  *response->mutable_session() = Describe(request->session_id(), *session);
  *response->mutable_grant() = Grant(request->session_id(), *session);
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::RenewLease(grpc::ServerContext* context,
                                            const v1::RenewLeaseRequest* request,
                                            v1::RenewLeaseResponse* response) {
  absl::MutexLock lock(&mu_);
  SessionState* session = nullptr;
  if (grpc::Status status =
          ArriveAt("RenewLease", *context, *request, calls_.renew_lease, &session);
      !status.ok()) {
    return status;
  }
  if (request->writer() != session->writer) {
    return ToGrpcStatus(
        WithReason(absl::AbortedError(absl::StrCat("fake coordinator: writer ", request->writer(),
                                                   " was taken over")),
                   v1::ERROR_REASON_WRITER_SUPERSEDED));
  }
  response->set_context_len(static_cast<int32_t>(session->tokens.size()));
  *response->mutable_lease() = Lease(request->session_id(), *session);
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::Extend(grpc::ServerContext* context,
                                        const v1::ExtendRequest* request,
                                        v1::ExtendResponse* response) {
  absl::MutexLock lock(&mu_);
  SessionState* session = nullptr;
  if (grpc::Status status = ArriveAt("Extend", *context, *request, calls_.extend, &session);
      !status.ok()) {
    return status;
  }
  if (grpc::Status status =
          Commit(*session, request->writer(), request->expected_context_len(), request->tokens());
      !status.ok()) {
    return status;
  }
  // The scripted cached prefix of the prompt joins the history at once.
  const int32_t cached = std::min(cache_next_, std::max(0, request->next_tokens_size() - 1));
  cache_next_ = 0;
  session->tokens.insert(session->tokens.end(), request->next_tokens().begin(),
                         request->next_tokens().begin() + cached);
  const int64_t covered = static_cast<int64_t>(session->tokens.size()) +
                          (request->next_tokens_size() - cached) + request->reserve_tokens();
  session->blocks = static_cast<int>((covered + model_.block_size() - 1) / model_.block_size());
  response->set_context_len(static_cast<int32_t>(session->tokens.size()));
  response->set_cached_tokens(cached);
  *response->mutable_lease() = Lease(request->session_id(), *session);
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::EndTurn(grpc::ServerContext* context,
                                         const v1::EndTurnRequest* request,
                                         v1::EndTurnResponse* response) {
  absl::MutexLock lock(&mu_);
  SessionState* session = nullptr;
  if (grpc::Status status = ArriveAt("EndTurn", *context, *request, calls_.end_turn, &session);
      !status.ok()) {
    return status;
  }
  if (grpc::Status status =
          Commit(*session, request->writer(), request->expected_context_len(), request->tokens());
      !status.ok()) {
    return status;
  }
  response->set_context_len(static_cast<int32_t>(session->tokens.size()));
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::CloseSession(grpc::ServerContext* context,
                                              const v1::CloseSessionRequest* request,
                                              v1::CloseSessionResponse* response) {
  absl::MutexLock lock(&mu_);
  SessionState* session = nullptr;
  if (grpc::Status status =
          ArriveAt("CloseSession", *context, *request, calls_.close_session, &session);
      !status.ok()) {
    return status;
  }
  sessions_.erase(request->session_id());
  return grpc::Status::OK;
}

grpc::Status FakeSessionService::GetStats(const grpc::ServerContext& context,
                                          v1::GetStatsResponse* response) {
  absl::MutexLock lock(&mu_);
  if (grpc::Status status = Record("GetStats", context); !status.ok()) return status;
  v1::ModelStats* stats = response->add_models();
  *stats->mutable_model() = model_;
  stats->set_sessions(static_cast<int64_t>(sessions_.size()));
  response->set_shards(static_cast<int32_t>(shards_.size()));
  return grpc::Status::OK;
}

}  // namespace kvtier
