#include "proto/wire/error_reason.h"

#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace kvtier {

absl::Status WithReason(absl::Status status, v1::ErrorReason reason) {
  v1::ErrorInfo info;
  info.set_reason(reason);
  status.SetPayload(kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

v1::ErrorReason ReasonOf(const absl::Status& status) {
  const absl::optional<absl::Cord> payload = status.GetPayload(kErrorInfoTypeUrl);
  v1::ErrorInfo info;
  if (!payload.has_value() || !info.ParseFromString(std::string(*payload))) {
    return v1::ERROR_REASON_UNSPECIFIED;
  }
  return info.reason();
}

absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  absl::Status prefixed(status.code(), absl::StrCat(prefix, status.message()));
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    prefixed.SetPayload(type_url, payload);
  });
  return prefixed;
}

absl::Status ReprefillRequiredError(absl::string_view message) {
  return WithReason(absl::FailedPreconditionError(message), v1::ERROR_REASON_REPREFILL_REQUIRED);
}

}  // namespace kvtier
