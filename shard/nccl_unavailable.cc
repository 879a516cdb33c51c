// NCCL block transfers in a build without NCCL: every call says so.
#include "shard/nccl_block_transfer.h"

namespace kvtier {
namespace {

absl::Status BuiltWithoutNccl() { return absl::FailedPreconditionError("built without NCCL"); }

}  // namespace

bool NcclTransferBuilt() { return false; }

absl::StatusOr<std::string> NcclDeviceOf(const KvPool& pool) { return BuiltWithoutNccl(); }

absl::StatusOr<std::string> NewNcclUniqueId() { return BuiltWithoutNccl(); }

absl::Status SendBlocksOverNccl(const KvPool& pool, absl::Span<const int32_t> block_ids,
                                absl::string_view unique_id, absl::Time deadline,
                                absl::FunctionRef<bool()> cancelled) {
  return BuiltWithoutNccl();
}

absl::Status ReceiveBlocksOverNccl(KvPool& pool, absl::Span<const int32_t> block_ids,
                                   absl::string_view unique_id, absl::Time deadline,
                                   absl::FunctionRef<bool()> cancelled) {
  return BuiltWithoutNccl();
}

}  // namespace kvtier
