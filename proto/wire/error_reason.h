// Machine-readable failure reasons (kvtier.v1.ErrorReason, errors.proto) on absl::Status: a
// reason rides as the status's payload under ErrorInfo's type URL, and crosses the wire packed
// in the google.rpc.Status of the `grpc-status-details-bin` trailer (status_convert.h does
// both directions). Callers decide by the reason, never by parsing the message.
// Pure functions.
#ifndef KVTIER_PROTO_WIRE_ERROR_REASON_H_
#define KVTIER_PROTO_WIRE_ERROR_REASON_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kvtier/v1/errors.pb.h"

namespace kvtier {

// The type URL of kvtier.v1.ErrorInfo, as google.protobuf.Any names it.
inline constexpr absl::string_view kErrorInfoTypeUrl = "type.googleapis.com/kvtier.v1.ErrorInfo";

// `status` (not OK) carrying `reason`.
absl::Status WithReason(absl::Status status, v1::ErrorReason reason);

// The reason `status` carries; ERROR_REASON_UNSPECIFIED for none (and for OK).
v1::ErrorReason ReasonOf(const absl::Status& status);

// `status` with `prefix` before its message ("plan.sequences[0]." + "lease: ..."), keeping its
// code and reason: how a caller adds context to a status it passes on.
absl::Status Prefixed(absl::string_view prefix, const absl::Status& status);

// The status a front-end must answer by opening a new session and prefilling again: the
// session's K/V is gone. FAILED_PRECONDITION with reason REPREFILL_REQUIRED.
absl::Status ReprefillRequiredError(absl::string_view message);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_ERROR_REASON_H_
