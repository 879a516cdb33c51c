#include "client/ctl/coordinator_calls.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proto/wire/status_convert.h"
#include "proto/wire/transport_security.h"

namespace kvtier {
CoordinatorCalls::CoordinatorCalls(const std::string& address, absl::Duration deadline,
                                   const ChannelSecurity& security)
    : address_(address),
      deadline_(deadline),
      channel_(OpenChannel(address, security)),
      admin_(v1::AdminService::NewStub(channel_)),
      sessions_(v1::SessionService::NewStub(channel_)) {}

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> CoordinatorCalls::Unary(Stub& stub, Rpc<Stub, Request, Response> rpc,
                                                 absl::string_view name, const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  Response response;
  if (grpc::Status status = (stub.*rpc)(&context, request, &response); !status.ok()) {
    return FromGrpcStatus(
        status,
        absl::StrCat(name, " to ", address_, ": ",
                     absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))));
  }
  return response;
}

absl::StatusOr<v1::GetStatsResponse> CoordinatorCalls::Call(const v1::GetStatsRequest& request) {
  return Unary(*admin_, &v1::AdminService::Stub::GetStats, "GetStats", request);
}

absl::StatusOr<v1::InvalidateSessionResponse> CoordinatorCalls::Call(
    const v1::InvalidateSessionRequest& request) {
  return Unary(*sessions_, &v1::SessionService::Stub::InvalidateSession, "InvalidateSession",
               request);
}

absl::StatusOr<v1::InvalidatePrefixResponse> CoordinatorCalls::Call(
    const v1::InvalidatePrefixRequest& request) {
  return Unary(*sessions_, &v1::SessionService::Stub::InvalidatePrefix, "InvalidatePrefix",
               request);
}

absl::StatusOr<v1::InvalidateTenantResponse> CoordinatorCalls::Call(
    const v1::InvalidateTenantRequest& request) {
  return Unary(*admin_, &v1::AdminService::Stub::InvalidateTenant, "InvalidateTenant", request);
}

absl::StatusOr<v1::InvalidateModelResponse> CoordinatorCalls::Call(
    const v1::InvalidateModelRequest& request) {
  return Unary(*admin_, &v1::AdminService::Stub::InvalidateModel, "InvalidateModel", request);
}

absl::StatusOr<v1::RetireModelResponse> CoordinatorCalls::Call(
    const v1::RetireModelRequest& request) {
  return Unary(*admin_, &v1::AdminService::Stub::RetireModel, "RetireModel", request);
}

}  // namespace kvtier
