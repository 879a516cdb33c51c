#include "proto/wire/time_convert.h"

#include <cstdint>

namespace kvtier {
namespace {

// Splits `d` into whole seconds and nanoseconds of the same sign, as both messages keep them.
void Split(absl::Duration d, int64_t* seconds, int32_t* nanos) {
  const absl::Duration whole = absl::Trunc(d, absl::Seconds(1));
  *seconds = absl::ToInt64Seconds(whole);
  *nanos = static_cast<int32_t>(absl::ToInt64Nanoseconds(d - whole));
}

}  // namespace

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

google::protobuf::Duration ToProtoDuration(absl::Duration duration) {
  google::protobuf::Duration proto;
  int64_t seconds = 0;
  int32_t nanos = 0;
  Split(duration, &seconds, &nanos);
  proto.set_seconds(seconds);
  proto.set_nanos(nanos);
  return proto;
}

absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

google::protobuf::Timestamp ToProtoTimestamp(absl::Time time) {
  // Timestamps keep non-negative nanos: floor to the second.
  const int64_t seconds = absl::ToUnixSeconds(time);
  google::protobuf::Timestamp proto;
  proto.set_seconds(seconds);
  proto.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  return proto;
}

}  // namespace kvtier
