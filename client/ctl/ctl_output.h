// What kvtier-ctl prints: each command's response as text for people (aligned tables: the
// models and the tier for stats; what an invalidation or a retirement dropped) or as JSON for
// scripts (the response message in proto3's JSON mapping, field names as in the .proto, zeros
// included); and a failed call as one line with its reason. Pure functions.
#ifndef KVTIER_CLIENT_CTL_CTL_OUTPUT_H_
#define KVTIER_CLIENT_CTL_CTL_OUTPUT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "kvtier/v1/admin.pb.h"
#include "kvtier/v1/session.pb.h"

namespace kvtier {

// Each request's response, as text; the request says what was asked.
std::string ResultText(const v1::GetStatsRequest& request, const v1::GetStatsResponse& response);
std::string ResultText(const v1::InvalidateSessionRequest& request,
                       const v1::InvalidateSessionResponse& response);
std::string ResultText(const v1::InvalidatePrefixRequest& request,
                       const v1::InvalidatePrefixResponse& response);
std::string ResultText(const v1::InvalidateTenantRequest& request,
                       const v1::InvalidateTenantResponse& response);
std::string ResultText(const v1::InvalidateModelRequest& request,
                       const v1::InvalidateModelResponse& response);
std::string ResultText(const v1::RetireModelRequest& request,
                       const v1::RetireModelResponse& response);

// `message` as JSON, one field a line.
absl::StatusOr<std::string> MessageJson(const google::protobuf::Message& message);

// The status's message, then its reason when it has one: "...: no session \"s1\" (reason
// INVALIDATED)".
std::string FailureText(const absl::Status& status);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CTL_CTL_OUTPUT_H_
