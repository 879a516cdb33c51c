// The kvtier.v1.AdminService gRPC service (admin.proto): the operators' calls, a thin
// callback-API edge over a Coordinator. Registration without retirement and stats finish
// inline; retirement and invalidation finish from the coordinator's callback, once the shards
// have answered. Every call is first checked by the Authorizer: it needs an admin.
#ifndef KVTIER_SERVICE_ADMIN_SERVICE_H_
#define KVTIER_SERVICE_ADMIN_SERVICE_H_

#include <utility>

#include "grpcpp/support/server_callback.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "proto/wire/authorizer.h"
#include "service/coordinator.h"

namespace kvtier {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(Coordinator* coordinator, Authorizer authorizer)
      : coordinator_(coordinator), authorizer_(std::move(authorizer)) {}

  grpc::ServerUnaryReactor* RegisterModel(grpc::CallbackServerContext* context,
                                          const v1::RegisterModelRequest* request,
                                          v1::RegisterModelResponse* response) override;
  grpc::ServerUnaryReactor* RetireModel(grpc::CallbackServerContext* context,
                                        const v1::RetireModelRequest* request,
                                        v1::RetireModelResponse* response) override;
  grpc::ServerUnaryReactor* InvalidateTenant(grpc::CallbackServerContext* context,
                                             const v1::InvalidateTenantRequest* request,
                                             v1::InvalidateTenantResponse* response) override;
  grpc::ServerUnaryReactor* InvalidateModel(grpc::CallbackServerContext* context,
                                            const v1::InvalidateModelRequest* request,
                                            v1::InvalidateModelResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;

 private:
  Coordinator* const coordinator_;
  const Authorizer authorizer_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_ADMIN_SERVICE_H_
