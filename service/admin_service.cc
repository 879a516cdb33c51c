#include "service/admin_service.h"

#include "service/unary_reply.h"

namespace kvtier {

grpc::ServerUnaryReactor* AdminServiceImpl::RegisterModel(grpc::CallbackServerContext* context,
                                                          const v1::RegisterModelRequest* request,
                                                          v1::RegisterModelResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kAdmin}, "AdminService.RegisterModel");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->RegisterModel(*request, FinishLater<v1::RegisterModelResponse>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RetireModel(grpc::CallbackServerContext* context,
                                                        const v1::RetireModelRequest* request,
                                                        v1::RetireModelResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kAdmin}, "AdminService.RetireModel");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->RetireModel(*request, FinishLater<v1::RetireModelResponse>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::InvalidateTenant(
    grpc::CallbackServerContext* context, const v1::InvalidateTenantRequest* request,
    v1::InvalidateTenantResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kAdmin}, "AdminService.InvalidateTenant");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->InvalidateTenant(*request, FinishLater<v1::InvalidationResult>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::InvalidateModel(
    grpc::CallbackServerContext* context, const v1::InvalidateModelRequest* request,
    v1::InvalidateModelResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kAdmin}, "AdminService.InvalidateModel");
      !denied.ok()) {
    return Reply(context, denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  coordinator_->InvalidateModel(*request, FinishLater<v1::InvalidationResult>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetStats(grpc::CallbackServerContext* context,
                                                     const v1::GetStatsRequest* request,
                                                     v1::GetStatsResponse* response) {
  if (absl::Status denied = authorizer_.Require(*context, {Role::kAdmin}, "AdminService.GetStats");
      !denied.ok()) {
    return Reply(context, denied);
  }
  return Reply(context, absl::StatusOr<v1::GetStatsResponse>(coordinator_->GetStats()), response);
}

}  // namespace kvtier
