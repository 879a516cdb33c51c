// RPC metrics: a gRPC server interceptor that times every unary call the server takes, from
// its start to its status, into kvtier_rpc_server_duration_seconds{method, code} (a
// histogram, buckets from 25 microseconds to 10 seconds). `method` is "kvtier.v1.
// SessionService/OpenSession" for a method of a service the process links, "unknown" for any
// other name a caller sends (so callers cannot grow the label set); `code` is the gRPC status
// code's name, CANCELLED for a call that ended without sending one. Streaming methods are not
// intercepted: a Step stream lives as long as its client, and the interceptor's hooks would run
// on every message of the data plane (the shard's own metrics time and count its steps).
//
// Thread-safe: the factory is immutable; each call's interceptor is used by one call.
#ifndef KVTIER_PROTO_WIRE_RPC_METRICS_H_
#define KVTIER_PROTO_WIRE_RPC_METRICS_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "prometheus/registry.h"

namespace kvtier {

// Counts into `registry`, which must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    prometheus::Registry& registry);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_RPC_METRICS_H_
