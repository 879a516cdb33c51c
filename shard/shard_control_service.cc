#include "shard/shard_control_service.h"

#include "absl/strings/str_cat.h"
#include "proto/wire/error_reason.h"
#include "proto/wire/model_spec.h"
#include "proto/wire/status_convert.h"

namespace kvtier {

grpc::Status ShardControlServiceImpl::Revoke(grpc::ServerContext* context,
                                             const v1::RevokeRequest* request,
                                             v1::RevokeResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kCoordinator}, "ShardControlService.Revoke");
      !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::StatusOr<std::shared_ptr<HostedModel>> model =
      Find(request->model(), request->incarnation());
  if (!model.ok()) return ToGrpcStatus(model.status());
  if (*model == nullptr) return grpc::Status::OK;
  return ToGrpcStatus((*model)->Revoke(*request));
}

grpc::Status ShardControlServiceImpl::CopyBlocks(grpc::ServerContext* context,
                                                 const v1::CopyBlocksRequest* request,
                                                 v1::CopyBlocksResponse* response) {
  if (absl::Status denied =
          authorizer_.Require(*context, {Role::kCoordinator}, "ShardControlService.CopyBlocks");
      !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::StatusOr<std::shared_ptr<HostedModel>> model =
      Find(request->model(), request->incarnation());
  if (!model.ok()) return ToGrpcStatus(model.status());
  if (*model == nullptr) {
    return ToGrpcStatus(ReprefillRequiredError(
        absl::StrCat("incarnation: this shard does not hold incarnation ", request->incarnation(),
                     " of model ", ModelIdString(request->model()), "; its K/V is not here")));
  }
  return ToGrpcStatus((*model)->CopyBlocks(request->copies()));
}

absl::StatusOr<std::shared_ptr<HostedModel>> ShardControlServiceImpl::Find(
    const v1::ModelId& model, uint64_t incarnation) const {
  if (absl::Status status = ValidateModelId("model", model); !status.ok()) return status;
  absl::StatusOr<ShardState::Hosted> hosted = state_->Find("model", model);
  if (!hosted.ok() || hosted->model->range().incarnation() != incarnation) {
    return std::shared_ptr<HostedModel>();
  }
  return hosted->model;
}

}  // namespace kvtier
