// ShardControl: how the coordinator calls its shards' kvtier.v1.ShardControlService
// (shard_control.proto), asynchronously: each call returns at once and runs `done` later,
// exactly once, with the shard's answer or the transport's failure. GrpcShardControl
// (grpc_shard_control.h) is the real one; tests hand the Coordinator fakes.
//
// FanOut sends a batch of calls (an invalidation's revocations, a fork's copies) all at once
// and answers when the last has.
//
// Thread-safe: implementations may be called from any thread, and run `done` on their own.
#ifndef KVTIER_SERVICE_SHARD_CONTROL_H_
#define KVTIER_SERVICE_SHARD_CONTROL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "kvtier/v1/shard_control.pb.h"

namespace kvtier {

class ShardControl {
 public:
  using Done = std::function<void(absl::Status)>;

  virtual ~ShardControl() = default;

  virtual void Revoke(const std::string& address, const v1::RevokeRequest& request,
                      Done done) = 0;
  virtual void CopyBlocks(const std::string& address, const v1::CopyBlocksRequest& request,
                          Done done) = 0;
};

// One coordinator-to-shard request, to the member `shard_id` at `address`.
struct ShardCall {
  uint64_t shard_id = 0;
  std::string address;
  std::variant<v1::RevokeRequest, v1::CopyBlocksRequest> request;
};

// Sends every call through `control` at once; once the last has answered, runs `done` with
// each call's status, in call order (on the thread of the last answer; at once, on this one,
// when `calls` is empty).
void FanOut(ShardControl& control, std::vector<ShardCall> calls,
            std::function<void(const std::vector<ShardCall>&, const std::vector<absl::Status>&)>
                done);

}  // namespace kvtier

#endif  // KVTIER_SERVICE_SHARD_CONTROL_H_
