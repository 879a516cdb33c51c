// The gRPC transport of block transfers (transfer.proto), both ends: the source streams
// v1::ReadBlocksResponse messages, one block of one layer each, read from its pool with ReadKv; the
// destination checks each against what it asked for and writes it with WriteKv. Works for any
// pool (CPU, or CUDA through the pool's host staging).
//
// Thread-safety: free functions; concurrent transfers are safe on disjoint blocks (kv_pool.h).
#ifndef KVTIER_SHARD_GRPC_BLOCK_TRANSFER_H_
#define KVTIER_SHARD_GRPC_BLOCK_TRANSFER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cache/kv/kv_pool.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/transfer.grpc.pb.h"

namespace kvtier {

// FAILED_PRECONDITION naming max_message_bytes unless one BlockData message of a pool of
// `shape` fits `max_message_bytes`.
absl::Status CheckBlockDataFits(const KvPoolShape& shape, int max_message_bytes);

// The status of a call to the source (`source_name`) that did `what`, for the pull's caller,
// its message prefixed "source <source_name>: <what>: ". NOT_FOUND, FAILED_PRECONDITION,
// UNAVAILABLE and DEADLINE_EXCEEDED keep their code (transfer.proto's errors); CANCELLED, which
// the destination never asks for, becomes UNAVAILABLE: the source went away. Any other code
// (UNIMPLEMENTED from a server that is no shard, INVALID_ARGUMENT, INTERNAL...) would read as
// the pull's own: it becomes FAILED_PRECONDITION, the message naming the source's code.
absl::Status SourceCallStatus(const grpc::Status& status, absl::string_view source_name,
                              absl::string_view what);

// The source: writes every layer of each of `block_ids` (checked by the caller) to `writer`,
// block by block in order, each block's layers in order. CANCELLED when the reader went away.
absl::Status StreamBlocks(const KvPool& pool, absl::Span<const int32_t> block_ids,
                          grpc::ServerWriterInterface<v1::ReadBlocksResponse>& writer);

// The destination: reads `request`'s blocks from `source` (named `source_name` in errors) by
// ReadBlocks in `context` (its deadline set), and writes them into `pool`, which has the source's
// shape (DescribeRange checked it). Source errors keep their code, prefixed with the source and the
// progress; INTERNAL for a message that breaks the order or sizes above, or a stream that ends
// early.
absl::Status PullBlocksOverGrpc(v1::BlockTransferService::Stub& source,
                                absl::string_view source_name, const v1::ReadBlocksRequest& request,
                                KvPool& pool, grpc::ClientContext& context);

}  // namespace kvtier

#endif  // KVTIER_SHARD_GRPC_BLOCK_TRANSFER_H_
