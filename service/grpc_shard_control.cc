#include "service/grpc_shard_control.h"

#include <utility>

#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "proto/wire/status_convert.h"
#include "proto/wire/transport_security.h"

namespace kvtier {
namespace {

// One call in flight: what the callback API needs alive until it answers.
template <typename Request, typename Response>
struct Call {
  std::shared_ptr<v1::ShardControlService::Stub> stub;
  grpc::ClientContext context;
  Request request;
  Response response;
  ShardControl::Done done;
};

template <typename Request, typename Response, typename Method>
void Send(std::shared_ptr<v1::ShardControlService::Stub> stub, const Request& request,
          absl::Duration deadline, ShardControl::Done done, Method method) {
  auto* call = new Call<Request, Response>;
  call->stub = std::move(stub);
  call->request = request;
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  (call->stub->async()->*method)(&call->context, &call->request, &call->response,
                                 [call](grpc::Status status) {
                                   call->done(FromGrpcStatus(status));
                                   delete call;
                                 });
}

}  // namespace

void GrpcShardControl::Revoke(const std::string& address, const v1::RevokeRequest& request,
                              Done done) {
  Send<v1::RevokeRequest, v1::RevokeResponse>(
      Stub(address), request, deadline_, std::move(done),
      static_cast<void (v1::ShardControlService::Stub::async_interface::*)(
          grpc::ClientContext*, const v1::RevokeRequest*, v1::RevokeResponse*,
          std::function<void(grpc::Status)>)>(
          &v1::ShardControlService::Stub::async_interface::Revoke));
}

void GrpcShardControl::CopyBlocks(const std::string& address, const v1::CopyBlocksRequest& request,
                                  Done done) {
  Send<v1::CopyBlocksRequest, v1::CopyBlocksResponse>(
      Stub(address), request, deadline_, std::move(done),
      static_cast<void (v1::ShardControlService::Stub::async_interface::*)(
          grpc::ClientContext*, const v1::CopyBlocksRequest*, v1::CopyBlocksResponse*,
          std::function<void(grpc::Status)>)>(
          &v1::ShardControlService::Stub::async_interface::CopyBlocks));
}

std::shared_ptr<v1::ShardControlService::Stub> GrpcShardControl::Stub(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<v1::ShardControlService::Stub>& stub = stubs_[address];
  if (stub == nullptr) {
    stub = v1::ShardControlService::NewStub(OpenChannel(address, security_));
  }
  return stub;
}

}  // namespace kvtier
