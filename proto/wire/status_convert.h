// The one place where absl::Status and grpc::Status meet. The two share their code numbering,
// so a code crosses the wire unchanged in both directions; an error reason (error_reason.h)
// crosses as the google.rpc.Status details gRPC carries in `grpc-status-details-bin`.
#ifndef KVTIER_PROTO_WIRE_STATUS_CONVERT_H_
#define KVTIER_PROTO_WIRE_STATUS_CONVERT_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace kvtier {

grpc::Status ToGrpcStatus(const absl::Status& status);

// Keeps the code; prefixes the message with `context` (e.g. "shard 1 (127.0.0.1:4001)").
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view context = "");

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_STATUS_CONVERT_H_
