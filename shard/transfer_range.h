// The head range a block transfer names, resolved on this shard, and the checks on a
// transfer's block ids; shared by both ends of a transfer (transfer.proto).
//
// A range is named by the model (name and version) and slot; a shard that hosts it must also
// have the pool shape and KV heads the caller's spec gives that slot, so bytes copied between
// the two pools mean the same thing. Pure functions over a thread-safe ShardState.
#ifndef KVTIER_SHARD_TRANSFER_RANGE_H_
#define KVTIER_SHARD_TRANSFER_RANGE_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kvtier/v1/transfer.pb.h"
#include "shard/hosted_model.h"
#include "shard/shard_state.h"

namespace kvtier {

// The request fields that name a range, for error messages.
struct RangeFieldNames {
  absl::string_view model;  // a ModelId
  absl::string_view slot;
};

// NOT_FOUND naming the field unless this shard hosts slot `slot` of `model`.
absl::StatusOr<std::shared_ptr<HostedModel>> FindHostedRange(const ShardState& state,
                                                             const v1::ModelId& model, int slot,
                                                             const RangeFieldNames& fields);

// `range` resolved as above (fields "range.model.id", "range.slot"), after INVALID_ARGUMENT for a
// malformed range.model; FAILED_PRECONDITION when the hosted pool's shape or KV heads differ
// from what range.model gives the slot.
absl::StatusOr<std::shared_ptr<HostedModel>> FindTransferRange(const ShardState& state,
                                                               const v1::TransferRange& range);

// What `model` holds, as the other end of a transfer must hold it.
v1::TransferRange TransferRangeOf(const HostedModel& model);

// INVALID_ARGUMENT naming the field ("block_ids[2]: ...") unless `block_ids` is not empty and
// lists blocks 0..num_blocks-1, each once.
absl::Status CheckBlockIds(absl::Span<const int32_t> block_ids, int num_blocks);

}  // namespace kvtier

#endif  // KVTIER_SHARD_TRANSFER_RANGE_H_
