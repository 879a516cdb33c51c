#include "proto/wire/status_convert.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "google/rpc/status.pb.h"
#include "proto/wire/error_reason.h"

namespace kvtier {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const absl::optional<absl::Cord> info = status.GetPayload(kErrorInfoTypeUrl);
  if (!info.has_value()) return grpc::Status(code, std::string(status.message()));
  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(std::string(status.message()));
  google::protobuf::Any* any = details.add_details();
  any->set_type_url(std::string(kErrorInfoTypeUrl));
  any->set_value(std::string(*info));
  return grpc::Status(code, std::string(status.message()), details.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  absl::Status converted(code, context.empty()
                                   ? status.error_message()
                                   : absl::StrCat(context, ": ", status.error_message()));
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return converted;
  }
  for (const google::protobuf::Any& any : details.details()) {
    if (any.type_url() == kErrorInfoTypeUrl) {
      converted.SetPayload(kErrorInfoTypeUrl, absl::Cord(any.value()));
    }
  }
  return converted;
}

}  // namespace kvtier
