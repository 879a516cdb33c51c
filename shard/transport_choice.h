// How a block transfer travels (v1::Transport), chosen by the destination from what it and the
// source can do. NCCL needs both pools on CUDA devices, NCCL in both builds, and two distinct
// GPUs (NCCL does not run two ranks of one communicator on one device); otherwise AUTO takes
// gRPC, and an explicit NCCL request is refused. Pure functions.
#ifndef KVTIER_SHARD_TRANSPORT_CHOICE_H_
#define KVTIER_SHARD_TRANSPORT_CHOICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "kvtier/v1/transfer.pb.h"

namespace kvtier {

struct TransportChoice {
  v1::Transport transport = v1::TRANSPORT_GRPC;  // TRANSPORT_GRPC or TRANSPORT_NCCL
  std::string reason;                            // why AUTO did not take NCCL; empty otherwise
};

// `requested` as the caller asked (a valid v1::Transport); `local_device` the destination's
// NcclDeviceOf (its GPU's UUID, or why it cannot use NCCL); `source` the source's answer to
// DescribeRange. FAILED_PRECONDITION, saying why, for TRANSPORT_NCCL where NCCL cannot run.
absl::StatusOr<TransportChoice> ChooseTransport(v1::Transport requested,
                                                const absl::StatusOr<std::string>& local_device,
                                                const v1::DescribeRangeResponse& source);

}  // namespace kvtier

#endif  // KVTIER_SHARD_TRANSPORT_CHOICE_H_
