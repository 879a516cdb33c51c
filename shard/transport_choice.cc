#include "shard/transport_choice.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

// Why NCCL cannot carry the transfer; empty when it can.
std::string NcclObstacle(const absl::StatusOr<std::string>& local_device,
                         const v1::DescribeRangeResponse& source) {
  if (!local_device.ok()) {
    return absl::StrCat("this shard cannot use it: ", local_device.status().message());
  }
  if (source.nccl_device_uuid().empty()) {
    return absl::StrCat("the source cannot use it: ", source.nccl_unavailable_reason());
  }
  if (source.nccl_device_uuid() == *local_device) {
    return absl::StrCat("both pools are on GPU ", absl::BytesToHexString(*local_device),
                        ", and NCCL needs a distinct GPU per rank");
  }
  return "";
}

}  // namespace

absl::StatusOr<TransportChoice> ChooseTransport(v1::Transport requested,
                                                const absl::StatusOr<std::string>& local_device,
                                                const v1::DescribeRangeResponse& source) {
  if (requested == v1::TRANSPORT_GRPC)
    return TransportChoice{.transport = v1::TRANSPORT_GRPC, .reason = ""};
  const std::string obstacle = NcclObstacle(local_device, source);
  if (obstacle.empty()) return TransportChoice{.transport = v1::TRANSPORT_NCCL, .reason = ""};
  if (requested == v1::TRANSPORT_NCCL) {
    return absl::FailedPreconditionError(absl::StrCat("transport: NCCL requested, but ", obstacle));
  }
  return TransportChoice{.transport = v1::TRANSPORT_GRPC,
                         .reason = absl::StrCat("NCCL not used: ", obstacle)};
}

}  // namespace kvtier
