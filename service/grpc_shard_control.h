// GrpcShardControl: ShardControl over gRPC's callback client API, one channel per shard
// address, opened on first use and kept, secured as `security` says (the coordinator's
// credential: shards serve ShardControlService to the coordinator role only); every call
// carries `deadline`.
//
// Thread-safe: mu_ guards the stubs; calls in flight keep their stub alive.
#ifndef KVTIER_SERVICE_GRPC_SHARD_CONTROL_H_
#define KVTIER_SERVICE_GRPC_SHARD_CONTROL_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvtier/v1/shard_control.grpc.pb.h"
#include "proto/wire/security_config.h"
#include "service/shard_control.h"

namespace kvtier {

class GrpcShardControl final : public ShardControl {
 public:
  GrpcShardControl(absl::Duration deadline, ChannelSecurity security)
      : deadline_(deadline), security_(std::move(security)) {}

  void Revoke(const std::string& address, const v1::RevokeRequest& request, Done done) override;
  void CopyBlocks(const std::string& address, const v1::CopyBlocksRequest& request,
                  Done done) override;

 private:
  std::shared_ptr<v1::ShardControlService::Stub> Stub(const std::string& address)
      ABSL_LOCKS_EXCLUDED(mu_);

  const absl::Duration deadline_;
  const ChannelSecurity security_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<v1::ShardControlService::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_GRPC_SHARD_CONTROL_H_
