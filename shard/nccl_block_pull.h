// The destination's side of an NCCL block transfer (transfer.proto): it makes the
// communicator's unique id, asks the source to send (SendBlocksNccl, issued asynchronously,
// since the source joins the communicator inside that call) and meanwhile receives as rank 1.
// Either side's failure stops the other: a failed receive cancels the call, and a failed call
// makes the receive give up, so neither waits for the deadline on a peer that is gone.
//
// Thread-safety: a free function; concurrent pulls are safe on disjoint blocks.
#ifndef KVTIER_SHARD_NCCL_BLOCK_PULL_H_
#define KVTIER_SHARD_NCCL_BLOCK_PULL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cache/kv/kv_pool.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/transfer.grpc.pb.h"

namespace kvtier {

// Copies `block_ids` (checked by the caller) of `range` from `source` (named `source_name` in
// errors) into `pool` over NCCL, calling the source in `context` (its deadline set), at which
// both sides give up. The source's errors keep their code, prefixed with the source; the
// receive's as nccl_block_transfer.h.
absl::Status PullBlocksOverNccl(v1::BlockTransferService::Stub& source,
                                absl::string_view source_name, const v1::TransferRange& range,
                                absl::Span<const int32_t> block_ids, KvPool& pool,
                                grpc::ClientContext& context);

}  // namespace kvtier

#endif  // KVTIER_SHARD_NCCL_BLOCK_PULL_H_
