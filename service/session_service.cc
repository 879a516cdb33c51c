#include "service/session_service.h"

#include <utility>

#include "service/unary_reply.h"

namespace kvtier {

grpc::ServerUnaryReactor* SessionServiceImpl::OpenSession(grpc::CallbackServerContext* context,
                                                          const v1::OpenSessionRequest* request,
                                                          v1::OpenSessionResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.OpenSession");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, coordinator_->OpenSession(*request), response);
}

grpc::ServerUnaryReactor* SessionServiceImpl::GetSession(grpc::CallbackServerContext* context,
                                                         const v1::GetSessionRequest* request,
                                                         v1::GetSessionResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.GetSession");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, coordinator_->GetSession(*request), response);
}

grpc::ServerUnaryReactor* SessionServiceImpl::TakeOverSession(
    grpc::CallbackServerContext* context, const v1::TakeOverSessionRequest* request,
    v1::TakeOverSessionResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.TakeOverSession");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, coordinator_->TakeOverSession(*request), response);
}

grpc::ServerUnaryReactor* SessionServiceImpl::RenewLease(grpc::CallbackServerContext* context,
                                                         const v1::RenewLeaseRequest* request,
                                                         v1::RenewLeaseResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.RenewLease");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, coordinator_->RenewLease(*request), response);
}

grpc::ServerUnaryReactor* SessionServiceImpl::Extend(grpc::CallbackServerContext* context,
                                                     const v1::ExtendRequest* request,
                                                     v1::ExtendResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.Extend");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, coordinator_->Extend(*request), response);
}

grpc::ServerUnaryReactor* SessionServiceImpl::EndTurn(grpc::CallbackServerContext* context,
                                                      const v1::EndTurnRequest* request,
                                                      v1::EndTurnResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.EndTurn");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->EndTurn(*request, FinishLater<v1::EndTurnResponse>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::CloseSession(grpc::CallbackServerContext* context,
                                                           const v1::CloseSessionRequest* request,
                                                           v1::CloseSessionResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.CloseSession");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, coordinator_->CloseSession(*request));
}

grpc::ServerUnaryReactor* SessionServiceImpl::ForkSession(grpc::CallbackServerContext* context,
                                                          const v1::ForkSessionRequest* request,
                                                          v1::ForkSessionResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.ForkSession");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->ForkSession(*request, FinishLater<v1::ForkSessionResponse>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::InvalidateSession(
    grpc::CallbackServerContext* context, const v1::InvalidateSessionRequest* request,
    v1::InvalidateSessionResponse* response) {
  if (absl::Status denied = authorizer_.RequireTenant(*context, request->tenant(),
                                                      "SessionService.InvalidateSession");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->InvalidateSession(*request, FinishLater<v1::InvalidationResult>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::InvalidatePrefix(
    grpc::CallbackServerContext* context, const v1::InvalidatePrefixRequest* request,
    v1::InvalidatePrefixResponse* response) {
  if (absl::Status denied =
          authorizer_.RequireTenant(*context, request->tenant(), "SessionService.InvalidatePrefix");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->InvalidatePrefix(*request, FinishLater<v1::InvalidationResult>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* ShardRegistryImpl::RegisterShard(grpc::CallbackServerContext* context,
                                                           const v1::RegisterShardRequest* request,
                                                           v1::RegisterShardResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kShard}, "ShardRegistryService.RegisterShard");
      !denied.ok()) {
    return Reply(context, denied);
  }
  absl::StatusOr<v1::ShardAssignment> assignment = coordinator_->RegisterShard(*request);
  if (assignment.ok()) *response->mutable_assignment() = *std::move(assignment);
  return Reply(context, assignment.status());
}

grpc::ServerUnaryReactor* ShardRegistryImpl::Heartbeat(grpc::CallbackServerContext* context,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kShard}, "ShardRegistryService.Heartbeat");
      !denied.ok()) {
    return Reply(context, denied);
  }
  absl::StatusOr<v1::ShardAssignment> assignment = coordinator_->Heartbeat(*request);
  if (assignment.ok()) *response->mutable_assignment() = *std::move(assignment);
  return Reply(context, assignment.status());
}

grpc::ServerUnaryReactor* ShardRegistryImpl::DeregisterShard(
    grpc::CallbackServerContext* context, const v1::DeregisterShardRequest* request,
    v1::DeregisterShardResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kShard}, "ShardRegistryService.DeregisterShard");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, coordinator_->DeregisterShard(*request));
}

}  // namespace kvtier
