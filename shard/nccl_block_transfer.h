// The NCCL transport of block transfers (transfer.proto) at the pool level: the two ranks of a
// two-rank communicator, rank 0 sending the listed blocks of its CUDA pool and rank 1
// receiving them into its own, straight between the pools' device memory (CudaPoolMemoryOf).
// Per layer, the K (then the V) of each run of consecutive block ids is one send; both ranks
// derive the same runs from the same block list, so the sends and receives pair up.
//
// Communicators are non-blocking (ncclConfig_t::blocking = 0): setup and transfers are polled
// until `deadline` or until `cancelled()` says to stop, and a communicator that fails or is
// given up is aborted, so a dead peer never hangs a shard. NCCL runs one rank per GPU: the two
// pools must be on distinct GPUs (compare NcclDeviceOf).
//
// Built with NCCL only when CMake found it (KVTIER_HAVE_NCCL); otherwise every function
// returns FAILED_PRECONDITION "built without NCCL" (nccl_unavailable.cc). This header needs no
// NCCL or CUDA header.
//
// Thread-safety: each call sets the pool's device on the calling thread and uses its own
// stream and communicator, so calls are independent. As with any CUDA pool access, a transfer
// must not race the pool's own calls on the same blocks (cuda_kv_pool.h).
// NOTE: NCCL does not promise progress to concurrent operations of different communicators on
// one GPU (their kernels may wait on each other); two transfers touching the same GPU at once
// may stall until their deadlines. Callers (the coordinator) should run one NCCL transfer per
// GPU at a time.
#ifndef KVTIER_SHARD_NCCL_BLOCK_TRANSFER_H_
#define KVTIER_SHARD_NCCL_BLOCK_TRANSFER_H_

#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "cache/kv/kv_pool.h"

namespace kvtier {

// The size of an ncclUniqueId (NCCL_UNIQUE_ID_BYTES).
inline constexpr int kNcclUniqueIdBytes = 128;

// True when this build has NCCL transfers (CMake found NCCL).
bool NcclTransferBuilt();

// INVALID_ARGUMENT naming nccl_unique_id unless `unique_id` is kNcclUniqueIdBytes long.
inline absl::Status CheckNcclUniqueId(absl::string_view unique_id) {
  if (unique_id.size() == kNcclUniqueIdBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("nccl_unique_id: expected ", kNcclUniqueIdBytes,
                                                 " bytes, got ", unique_id.size()));
}

// The 16-byte UUID of the GPU holding `pool`, when NCCL can send from or receive into it;
// FAILED_PRECONDITION saying why not (built without NCCL, a pool in host memory).
absl::StatusOr<std::string> NcclDeviceOf(const KvPool& pool);

// A fresh ncclUniqueId (kNcclUniqueIdBytes bytes). This process then runs the communicator's
// bootstrap, which the other rank must be able to reach over TCP.
absl::StatusOr<std::string> NewNcclUniqueId();

// Rank 0: sends `block_ids` (checked by the caller) of `pool` over the communicator of
// `unique_id`: INVALID_ARGUMENT as CheckNcclUniqueId; FAILED_PRECONDITION as NcclDeviceOf;
// DEADLINE_EXCEEDED or CANCELLED when given up; UNAVAILABLE when the peer failed; INTERNAL for
// other CUDA or NCCL failures, naming the call.
absl::Status SendBlocksOverNccl(const KvPool& pool, absl::Span<const int32_t> block_ids,
                                absl::string_view unique_id, absl::Time deadline,
                                absl::FunctionRef<bool()> cancelled);

// Rank 1: receives `block_ids` into `pool`, which has the sender's shape. Errors as above.
absl::Status ReceiveBlocksOverNccl(KvPool& pool, absl::Span<const int32_t> block_ids,
                                   absl::string_view unique_id, absl::Time deadline,
                                   absl::FunctionRef<bool()> cancelled);

}  // namespace kvtier

#endif  // KVTIER_SHARD_NCCL_BLOCK_TRANSFER_H_
