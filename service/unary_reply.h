// Finishes a callback-API unary RPC with a handler's result: the one place where the
// coordinator's absl results become gRPC responses. Reply finishes at once; FinishLater gives
// an asynchronous handler the callback that finishes when its result comes.
#ifndef KVTIER_SERVICE_UNARY_REPLY_H_
#define KVTIER_SERVICE_UNARY_REPLY_H_

#include <functional>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "proto/wire/status_convert.h"

namespace kvtier {

template <typename Response>
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                absl::StatusOr<Response> result, Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

inline grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                       const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A callback that puts its result into `response` (the response itself, or its `result` field)
// and finishes `reactor`.
template <typename Result, typename Response>
std::function<void(absl::StatusOr<Result>)> FinishLater(grpc::ServerUnaryReactor* reactor,
                                                        Response* response) {
  return [reactor, response](absl::StatusOr<Result> result) {
    if (result.ok()) {
      if constexpr (std::is_same_v<Result, Response>) {
        *response = *std::move(result);
      } else {
        *response->mutable_result() = *std::move(result);
      }
    }
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

}  // namespace kvtier

#endif  // KVTIER_SERVICE_UNARY_REPLY_H_
