// The kvtier.v1.SessionService and kvtier.v1.ShardRegistryService gRPC services: thin callback-API
// edges over a Coordinator, whose calls hold its lock briefly and never block: most reactions
// finish inline; forks and invalidations finish from the coordinator's callback, once the
// shards have answered. Every call is first checked by the Authorizer: SessionService needs a
// front-end acting for the request's tenant, ShardRegistryService a shard.
#ifndef KVTIER_SERVICE_SESSION_SERVICE_H_
#define KVTIER_SERVICE_SESSION_SERVICE_H_

#include <utility>

#include "kvtier/v1/registry.grpc.pb.h"
#include "kvtier/v1/session.grpc.pb.h"
#include "proto/wire/authorizer.h"
#include "service/coordinator.h"

namespace kvtier {

class SessionServiceImpl final : public v1::SessionService::CallbackService {
 public:
  SessionServiceImpl(Coordinator* coordinator, Authorizer authorizer)
      : coordinator_(coordinator), authorizer_(std::move(authorizer)) {}

  grpc::ServerUnaryReactor* OpenSession(grpc::CallbackServerContext* context,
                                        const v1::OpenSessionRequest* request,
                                        v1::OpenSessionResponse* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const v1::GetSessionRequest* request,
                                       v1::GetSessionResponse* response) override;
  grpc::ServerUnaryReactor* TakeOverSession(grpc::CallbackServerContext* context,
                                            const v1::TakeOverSessionRequest* request,
                                            v1::TakeOverSessionResponse* response) override;
  grpc::ServerUnaryReactor* RenewLease(grpc::CallbackServerContext* context,
                                       const v1::RenewLeaseRequest* request,
                                       v1::RenewLeaseResponse* response) override;
  grpc::ServerUnaryReactor* Extend(grpc::CallbackServerContext* context,
                                   const v1::ExtendRequest* request,
                                   v1::ExtendResponse* response) override;
  grpc::ServerUnaryReactor* EndTurn(grpc::CallbackServerContext* context,
                                    const v1::EndTurnRequest* request,
                                    v1::EndTurnResponse* response) override;
  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* context,
                                         const v1::CloseSessionRequest* request,
                                         v1::CloseSessionResponse* response) override;
  grpc::ServerUnaryReactor* ForkSession(grpc::CallbackServerContext* context,
                                        const v1::ForkSessionRequest* request,
                                        v1::ForkSessionResponse* response) override;
  grpc::ServerUnaryReactor* InvalidateSession(grpc::CallbackServerContext* context,
                                              const v1::InvalidateSessionRequest* request,
                                              v1::InvalidateSessionResponse* response) override;
  grpc::ServerUnaryReactor* InvalidatePrefix(grpc::CallbackServerContext* context,
                                             const v1::InvalidatePrefixRequest* request,
                                             v1::InvalidatePrefixResponse* response) override;

 private:
  Coordinator* const coordinator_;
  const Authorizer authorizer_;
};

class ShardRegistryImpl final : public v1::ShardRegistryService::CallbackService {
 public:
  ShardRegistryImpl(Coordinator* coordinator, Authorizer authorizer)
      : coordinator_(coordinator), authorizer_(std::move(authorizer)) {}

  grpc::ServerUnaryReactor* RegisterShard(grpc::CallbackServerContext* context,
                                          const v1::RegisterShardRequest* request,
                                          v1::RegisterShardResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* DeregisterShard(grpc::CallbackServerContext* context,
                                            const v1::DeregisterShardRequest* request,
                                            v1::DeregisterShardResponse* response) override;

 private:
  Coordinator* const coordinator_;
  const Authorizer authorizer_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_SESSION_SERVICE_H_
