#include "shard/nccl_block_pull.h"

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "proto/wire/error_reason.h"
#include "shard/grpc_block_transfer.h"
#include "shard/nccl_block_transfer.h"

namespace kvtier {

absl::Status PullBlocksOverNccl(v1::BlockTransferService::Stub& source,
                                absl::string_view source_name, const v1::TransferRange& range,
                                absl::Span<const int32_t> block_ids, KvPool& pool,
                                grpc::ClientContext& context) {
  absl::StatusOr<std::string> unique_id = NewNcclUniqueId();
  if (!unique_id.ok()) return unique_id.status();
  v1::SendBlocksNcclRequest request;
  *request.mutable_range() = range;
  request.mutable_block_ids()->Assign(block_ids.begin(), block_ids.end());
  request.set_nccl_unique_id(*unique_id);
  v1::SendBlocksNcclResponse response;
  const absl::Time deadline = absl::FromChrono(context.deadline());

  grpc::Status sent;
  absl::Notification sent_done;
  source.async()->SendBlocksNccl(&context, &request, &response,
                                 [&sent, &sent_done](grpc::Status status) {
                                   sent = std::move(status);
                                   sent_done.Notify();
                                 });
  const absl::Status received = ReceiveBlocksOverNccl(
      pool, block_ids, *unique_id, deadline,
      [&sent, &sent_done] { return sent_done.HasBeenNotified() && !sent.ok(); });
  if (!received.ok()) context.TryCancel();
  sent_done.WaitForNotification();

  // A receive that was cancelled stopped because the call failed: the call says why.
  if (!received.ok() && !absl::IsCancelled(received)) {
    return Prefixed(absl::StrCat("NCCL receive from source ", source_name, ": "), received);
  }
  if (!sent.ok()) return SourceCallStatus(sent, source_name, "SendBlocksNccl");
  return received;
}

}  // namespace kvtier
