// Durations and times between the wire's google.protobuf.Duration / Timestamp and Abseil's.
// Pure functions.
#ifndef KVTIER_PROTO_WIRE_TIME_CONVERT_H_
#define KVTIER_PROTO_WIRE_TIME_CONVERT_H_

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace kvtier {

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration);
google::protobuf::Duration ToProtoDuration(absl::Duration duration);

absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& timestamp);
google::protobuf::Timestamp ToProtoTimestamp(absl::Time time);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_TIME_CONVERT_H_
