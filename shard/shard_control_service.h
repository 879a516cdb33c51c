// ShardControlServiceImpl: kvtier.v1.ShardControlService (shard_control.proto) on a shard, the
// coordinator's calls: Revoke marks sessions and blocks revoked in the hosted range
// (HostedModel::Revoke), so every step of those sessions or naming those blocks is refused from
// its next layer on;
// CopyBlocks copies a fork's tail block (HostedModel::CopyBlocks).
//
// A request for a model or incarnation this shard does not hold is about K/V it does not have:
// a revocation is acknowledged (there is nothing to refuse), a copy answers
// FAILED_PRECONDITION with reason REPREFILL_REQUIRED.
//
// NOTE: the synchronous server API: a copy reads and writes a few blocks for every layer, work
// the callback API's reactions must not do inline.
//
// Thread-safe: calls share only the ShardState, which is thread-safe.
#ifndef KVTIER_SHARD_SHARD_CONTROL_SERVICE_H_
#define KVTIER_SHARD_SHARD_CONTROL_SERVICE_H_

#include <utility>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"
#include "kvtier/v1/shard_control.grpc.pb.h"
#include "proto/wire/authorizer.h"
#include "shard/shard_state.h"

namespace kvtier {

class ShardControlServiceImpl final : public v1::ShardControlService::Service {
 public:
  // `state` must outlive the service. Every call needs the coordinator role.
  ShardControlServiceImpl(const ShardState* state, Authorizer authorizer)
      : state_(state), authorizer_(std::move(authorizer)) {}

  grpc::Status Revoke(grpc::ServerContext* context, const v1::RevokeRequest* request,
                      v1::RevokeResponse* response) override;
  grpc::Status CopyBlocks(grpc::ServerContext* context, const v1::CopyBlocksRequest* request,
                          v1::CopyBlocksResponse* response) override;

 private:
  // The hosted range of `model` if it is `incarnation`; nullptr when this shard holds another
  // (or none).
  absl::StatusOr<std::shared_ptr<HostedModel>> Find(const v1::ModelId& model,
                                                    uint64_t incarnation) const;

  const ShardState* const state_;
  const Authorizer authorizer_;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_SHARD_CONTROL_SERVICE_H_
