// The one way kvtier starts a gRPC server (coordinator, shards, benchmarks): grpc.health.v1
// health checking and reflection enabled, the message size limits set both ways, every call
// timed into the process's metrics (rpc_metrics.h), and the port held alone. NOTE: gRPC shares
// ports by default (SO_REUSEPORT), so a second server on a port in use would start and split the
// connections with the first; here it fails instead, saying so.
//
// Thread-safe.
#ifndef KVTIER_PROTO_WIRE_SERVER_BUILDER_H_
#define KVTIER_PROTO_WIRE_SERVER_BUILDER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "grpcpp/server.h"
#include "proto/wire/metrics.h"
#include "proto/wire/security_config.h"

namespace kvtier {

struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port
};

// Serves `services` (which must outlive the server) on `listen_address` (host:port, port 0:
// any free port), with TLS as `security` says (its principals are for the services' own
// Authorizer), its calls timed into `metrics` (when not null; it must outlive the server).
// INVALID_ARGUMENT for a malformed address or security, UNAVAILABLE when the
// address cannot be bound ("listen_address: 127.0.0.1:50061 is already in use"); the address's
// errors name `field`.
absl::StatusOr<StartedServer> StartServer(absl::string_view field,
                                          const std::string& listen_address, int max_message_bytes,
                                          absl::Span<grpc::Service* const> services,
                                          const ServerSecurity& security = {},
                                          Metrics* metrics = nullptr);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_SERVER_BUILDER_H_
