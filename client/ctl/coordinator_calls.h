// CoordinatorCalls: kvtier-ctl's calls to a coordinator, AdminService and SessionService on its
// address, one overload per request. Every call carries the deadline; a failure keeps the gRPC
// code and the reason (proto/wire/status_convert.h), its message naming the call, the address
// and the code: "GetStats to 127.0.0.1:1: UNAVAILABLE: failed to connect to all addresses".
//
// Thread-safe (the stubs are).
#ifndef KVTIER_CLIENT_CTL_COORDINATOR_CALLS_H_
#define KVTIER_CLIENT_CTL_COORDINATOR_CALLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/session.grpc.pb.h"
#include "proto/wire/security_config.h"

namespace kvtier {

class CoordinatorCalls {
 public:
  // Connects lazily: an unreachable coordinator fails the first call with UNAVAILABLE.
  CoordinatorCalls(const std::string& address, absl::Duration deadline,
                   const ChannelSecurity& security);

  absl::StatusOr<v1::GetStatsResponse> Call(const v1::GetStatsRequest& request);
  absl::StatusOr<v1::InvalidateSessionResponse> Call(const v1::InvalidateSessionRequest& request);
  absl::StatusOr<v1::InvalidatePrefixResponse> Call(const v1::InvalidatePrefixRequest& request);
  absl::StatusOr<v1::InvalidateTenantResponse> Call(const v1::InvalidateTenantRequest& request);
  absl::StatusOr<v1::InvalidateModelResponse> Call(const v1::InvalidateModelRequest& request);
  absl::StatusOr<v1::RetireModelResponse> Call(const v1::RetireModelRequest& request);

 private:
  template <typename Stub, typename Request, typename Response>
  using Rpc = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Response*);

  // `rpc` on `stub` under the deadline; errors as the header says, `name` the call.
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Unary(Stub& stub, Rpc<Stub, Request, Response> rpc,
                                 absl::string_view name, const Request& request);

  const std::string address_;
  const absl::Duration deadline_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::AdminService::Stub> admin_;
  const std::unique_ptr<v1::SessionService::Stub> sessions_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CTL_COORDINATOR_CALLS_H_
