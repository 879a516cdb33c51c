// BlockTransferServiceImpl: kvtier.v1.BlockTransferService (transfer.proto) on a shard, both ends
// of a block copy between shards. As the destination, PullBlocks finds the hosted range, asks the
// source about its own (DescribeRange), picks the transport (transport_choice.h) and copies
// over gRPC (grpc_block_transfer.h) or NCCL (nccl_block_pull.h), through a channel to the
// source opened for that pull. As the source, it answers DescribeRange, ReadBlocks and
// SendBlocksNccl for the ranges it hosts. Every call to the source carries the pull's
// deadline (a call that arrives without one gets `default_deadline`) and is cancelled when the
// pull is, so a shard shutting down never waits for a source.
//
// NOTE: the synchronous server API, like Attention: every call blocks, on copies, on the
// source, or on NCCL, and the synchronous server's thread per call is the executor for that.
//
// Thread-safe: calls share only the ShardState, which is thread-safe; a pull keeps its
// model's pool alive (a shared pointer) until it returns, even if an assignment drops it.
#ifndef KVTIER_SHARD_BLOCK_TRANSFER_SERVICE_H_
#define KVTIER_SHARD_BLOCK_TRANSFER_SERVICE_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/transfer.grpc.pb.h"
#include "proto/wire/authorizer.h"
#include "proto/wire/security_config.h"
#include "shard/shard_state.h"

namespace kvtier {

struct BlockTransferOptions {
  // The shard's largest message (both ways): a block of one layer must fit.
  int max_message_bytes = 256 << 20;
  // The deadline of a call that has none.
  absl::Duration default_deadline = absl::Minutes(5);
  // Who may call: PullBlocks is the coordinator's; the source's calls (DescribeRange,
  // ReadBlocks, SendBlocksNccl) are the coordinator's or another shard's, pulling.
  Authorizer authorizer;
  // How the channel to a pull's source is secured (this shard's credential).
  ChannelSecurity source_channels;
};

class BlockTransferServiceImpl final : public v1::BlockTransferService::Service {
 public:
  // `state` must outlive the service.
  BlockTransferServiceImpl(const ShardState* state, const BlockTransferOptions& options)
      : state_(state), options_(options) {}

  grpc::Status PullBlocks(grpc::ServerContext* context, const v1::PullBlocksRequest* request,
                          v1::PullBlocksResponse* response) override;
  grpc::Status DescribeRange(grpc::ServerContext* context, const v1::DescribeRangeRequest* request,
                             v1::DescribeRangeResponse* response) override;
  grpc::Status ReadBlocks(grpc::ServerContext* context, const v1::ReadBlocksRequest* request,
                          grpc::ServerWriter<v1::ReadBlocksResponse>* writer) override;
  grpc::Status SendBlocksNccl(grpc::ServerContext* context,
                              const v1::SendBlocksNcclRequest* request,
                              v1::SendBlocksNcclResponse* response) override;

 private:
  // Calls to the source end with `incoming`'s deadline (DeadlineOf) and are cancelled with it.
  absl::StatusOr<v1::PullBlocksResponse> Pull(const grpc::ServerContext& incoming,
                                              const v1::PullBlocksRequest& request) const;

  // The call's deadline, or default_deadline from now.
  absl::Time DeadlineOf(const grpc::ServerContext& context) const;

  const ShardState* const state_;
  const BlockTransferOptions options_;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_BLOCK_TRANSFER_SERVICE_H_
