// The kvtier.v1.AdminService gRPC service (admin.proto): the operators' calls, a thin
// callback-API edge over a Coordinator. Registration without retirement and stats finish
// inline; retirement and invalidation finish from the coordinator's callback, once the shards
// have answered.
#ifndef KVTIER_SERVICE_ADMIN_SERVICE_H_
#define KVTIER_SERVICE_ADMIN_SERVICE_H_

#include "grpcpp/support/server_callback.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "service/coordinator.h"

namespace kvtier {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  explicit AdminServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

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
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_ADMIN_SERVICE_H_
