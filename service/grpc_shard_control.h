// GrpcShardControl: ShardControl over gRPC's callback client API, one channel per shard
// address, opened on first use and kept; every call carries `deadline`.
//
// NOTE: until the security issue lands, these calls are unauthenticated, as every plane is.
//
// Thread-safe: mu_ guards the stubs; calls in flight keep their stub alive.
#ifndef KVTIER_SERVICE_GRPC_SHARD_CONTROL_H_
#define KVTIER_SERVICE_GRPC_SHARD_CONTROL_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvtier/v1/shard_control.grpc.pb.h"
#include "service/shard_control.h"

namespace kvtier {

class GrpcShardControl final : public ShardControl {
 public:
  explicit GrpcShardControl(absl::Duration deadline) : deadline_(deadline) {}

  void Revoke(const std::string& address, const v1::RevokeRequest& request, Done done) override;
  void CopyBlocks(const std::string& address, const v1::CopyBlocksRequest& request,
                  Done done) override;

 private:
  std::shared_ptr<v1::ShardControlService::Stub> Stub(const std::string& address)
      ABSL_LOCKS_EXCLUDED(mu_);

  const absl::Duration deadline_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<v1::ShardControlService::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_GRPC_SHARD_CONTROL_H_
