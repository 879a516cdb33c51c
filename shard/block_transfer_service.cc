#include "shard/block_transfer_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/wire/listen_address.h"
#include "proto/wire/status_convert.h"
#include "proto/wire/transport_security.h"
#include "shard/grpc_block_transfer.h"
#include "shard/nccl_block_pull.h"
#include "shard/nccl_block_transfer.h"
#include "shard/transfer_range.h"
#include "shard/transport_choice.h"

namespace kvtier {
namespace {

constexpr RangeFieldNames kPullFields = {.model = "model", .slot = "slot"};

std::unique_ptr<v1::BlockTransferService::Stub> SourceStub(const std::string& address,
                                                           const BlockTransferOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  return v1::BlockTransferService::NewStub(OpenChannel(address, options.source_channels, args));
}

// A call to the source on behalf of `incoming`: it ends at `deadline`, and is cancelled when
// `incoming` is (the caller went away, or this shard is shutting down).
std::unique_ptr<grpc::ClientContext> SourceCall(const grpc::ServerContext& incoming,
                                                absl::Time deadline) {
  std::unique_ptr<grpc::ClientContext> context = grpc::ClientContext::FromServerContext(incoming);
  context->set_deadline(absl::ToChronoTime(deadline));
  return context;
}

}  // namespace

grpc::Status BlockTransferServiceImpl::PullBlocks(grpc::ServerContext* context,
                                                  const v1::PullBlocksRequest* request,
                                                  v1::PullBlocksResponse* response) {
  if (absl::Status denied = options_.authorizer.Require(*context, {Role::kCoordinator},
                                                        "BlockTransferService.PullBlocks");
      !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::StatusOr<v1::PullBlocksResponse> pulled = Pull(*context, *request);
  if (pulled.ok()) *response = *std::move(pulled);
  return ToGrpcStatus(pulled.status());
}

absl::StatusOr<v1::PullBlocksResponse> BlockTransferServiceImpl::Pull(
    const grpc::ServerContext& incoming, const v1::PullBlocksRequest& request) const {
  absl::StatusOr<std::shared_ptr<HostedModel>> hosted =
      FindHostedRange(*state_, request.model(), request.slot(), kPullFields);
  if (!hosted.ok()) return hosted.status();
  KvPool& pool = (*hosted)->pool();
  const KvPoolShape& shape = pool.shape();
  if (absl::Status status = CheckBlockIds(request.block_ids(), shape.num_blocks); !status.ok()) {
    return status;
  }
  if (absl::StatusOr<HostPort> source = ParseHostPort("source_address", request.source_address());
      !source.ok()) {
    return source.status();
  }
  if (!v1::Transport_IsValid(request.transport())) {
    return absl::InvalidArgumentError(
        absl::StrCat("transport: expected AUTO, GRPC or NCCL, got ", request.transport()));
  }

  const absl::Time deadline = DeadlineOf(incoming);
  const std::string& source_name = request.source_address();
  const std::unique_ptr<v1::BlockTransferService::Stub> source = SourceStub(source_name, options_);
  const v1::TransferRange range = TransferRangeOf(**hosted);
  v1::DescribeRangeRequest describe;
  *describe.mutable_range() = range;
  v1::DescribeRangeResponse described;
  if (absl::Status status = SourceCallStatus(
          source->DescribeRange(SourceCall(incoming, deadline).get(), describe, &described),
          source_name, "DescribeRange");
      !status.ok()) {
    return status;
  }
  absl::StatusOr<TransportChoice> choice =
      ChooseTransport(request.transport(), NcclDeviceOf(pool), described);
  if (!choice.ok()) return choice.status();

  absl::Status status;
  if (choice->transport == v1::TRANSPORT_NCCL) {
    status = PullBlocksOverNccl(*source, source_name, range, request.block_ids(), pool,
                                *SourceCall(incoming, deadline));
  } else {
    status = CheckBlockDataFits(shape, options_.max_message_bytes);
    v1::ReadBlocksRequest read;
    *read.mutable_range() = range;
    *read.mutable_block_ids() = request.block_ids();
    if (status.ok()) {
      status =
          PullBlocksOverGrpc(*source, source_name, read, pool, *SourceCall(incoming, deadline));
    }
  }
  if (!status.ok()) return status;

  v1::PullBlocksResponse response;
  response.set_transport(choice->transport);
  response.set_transport_reason(choice->reason);
  response.set_blocks(request.block_ids_size());
  response.set_bytes(2 * shape.block_bytes() * shape.num_layers * request.block_ids_size());
  return response;
}

grpc::Status BlockTransferServiceImpl::DescribeRange(grpc::ServerContext* context,
                                                     const v1::DescribeRangeRequest* request,
                                                     v1::DescribeRangeResponse* response) {
  if (absl::Status denied = options_.authorizer.Require(
          *context, {Role::kCoordinator, Role::kShard}, "BlockTransferService.DescribeRange");
      !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::StatusOr<std::shared_ptr<HostedModel>> hosted =
      FindTransferRange(*state_, request->range());
  if (!hosted.ok()) return ToGrpcStatus(hosted.status());
  absl::StatusOr<std::string> device = NcclDeviceOf((*hosted)->pool());
  if (device.ok()) {
    response->set_nccl_device_uuid(*device);
  } else {
    response->set_nccl_unavailable_reason(std::string(device.status().message()));
  }
  return grpc::Status::OK;
}

grpc::Status BlockTransferServiceImpl::ReadBlocks(
    grpc::ServerContext* context, const v1::ReadBlocksRequest* request,
    grpc::ServerWriter<v1::ReadBlocksResponse>* writer) {
  if (absl::Status denied = options_.authorizer.Require(
          *context, {Role::kCoordinator, Role::kShard}, "BlockTransferService.ReadBlocks");
      !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::StatusOr<std::shared_ptr<HostedModel>> hosted =
      FindTransferRange(*state_, request->range());
  if (!hosted.ok()) return ToGrpcStatus(hosted.status());
  const KvPool& pool = (*hosted)->pool();
  absl::Status status = CheckBlockIds(request->block_ids(), pool.shape().num_blocks);
  if (status.ok()) status = CheckBlockDataFits(pool.shape(), options_.max_message_bytes);
  if (status.ok()) status = StreamBlocks(pool, request->block_ids(), *writer);
  return ToGrpcStatus(status);
}

grpc::Status BlockTransferServiceImpl::SendBlocksNccl(grpc::ServerContext* context,
                                                      const v1::SendBlocksNcclRequest* request,
                                                      v1::SendBlocksNcclResponse* response) {
  if (absl::Status denied = options_.authorizer.Require(
          *context, {Role::kCoordinator, Role::kShard}, "BlockTransferService.SendBlocksNccl");
      !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::StatusOr<std::shared_ptr<HostedModel>> hosted =
      FindTransferRange(*state_, request->range());
  if (!hosted.ok()) return ToGrpcStatus(hosted.status());
  const KvPool& pool = (*hosted)->pool();
  absl::Status status = CheckBlockIds(request->block_ids(), pool.shape().num_blocks);
  if (status.ok()) status = CheckNcclUniqueId(request->nccl_unique_id());
  if (status.ok()) {
    status = SendBlocksOverNccl(pool, request->block_ids(), request->nccl_unique_id(),
                                DeadlineOf(*context), [context] { return context->IsCancelled(); });
  }
  return ToGrpcStatus(status);
}

absl::Time BlockTransferServiceImpl::DeadlineOf(const grpc::ServerContext& context) const {
  if (context.deadline() == std::chrono::system_clock::time_point::max()) {
    return absl::Now() + options_.default_deadline;
  }
  return absl::FromChrono(context.deadline());
}

}  // namespace kvtier
