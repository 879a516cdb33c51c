#include "proto/wire/server_builder.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpc/grpc.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "proto/wire/listen_address.h"
#include "proto/wire/rpc_metrics.h"
#include "proto/wire/transport_security.h"

namespace kvtier {
namespace {

// Health checking and reflection are process-wide switches of gRPC, read by every builder.
// NOTE: naming the health messages' descriptor links them in, so that reflection describes the
// health service gRPC runs (proto/grpc/health/v1/health.proto).
void EnableHealthAndReflection() {
  static const bool enabled = [] {
    (void)grpc::health::v1::HealthCheckRequest::descriptor();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    return true;
  }();
  (void)enabled;
}

// Why gRPC could not listen on `address`, which it does not tell: binds a socket there as gRPC
// does (SO_REUSEADDR, no SO_REUSEPORT) and names the error.
absl::Status BindFailure(absl::string_view field, const std::string& address,
                         const HostPort& listen) {
  absl::string_view host = listen.host;
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  const std::string host_text(host);
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int error = getaddrinfo(host_text.empty() ? nullptr : host_text.c_str(),
                                    std::to_string(listen.port).c_str(), &hints, &found);
      error != 0) {
    return absl::UnavailableError(absl::StrCat(field, ": cannot listen on ", address, ": host \"",
                                               host_text, "\": ", gai_strerror(error)));
  }
  int error = 0;
  for (const addrinfo* candidate = found; candidate != nullptr && error != EADDRINUSE;
       candidate = candidate->ai_next) {
    const int fd = socket(candidate->ai_family, candidate->ai_socktype, candidate->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, candidate->ai_addr, candidate->ai_addrlen) != 0) error = errno;
    close(fd);
  }
  freeaddrinfo(found);
  if (error == EADDRINUSE) {
    return absl::UnavailableError(absl::StrCat(field, ": ", address, " is already in use"));
  }
  return absl::UnavailableError(
      absl::StrCat(field, ": cannot listen on ", address,
                   error != 0 ? absl::StrCat(": ", strerror(error)) : ""));
}

}  // namespace

absl::StatusOr<StartedServer> StartServer(absl::string_view field,
                                          const std::string& listen_address, int max_message_bytes,
                                          absl::Span<grpc::Service* const> services,
                                          const ServerSecurity& security, Metrics* metrics) {
  absl::StatusOr<HostPort> listen = ParseHostPort(field, listen_address);
  if (!listen.ok()) return listen.status();
  if (absl::Status status = CheckServerSecurity(security); !status.ok()) return status;
  EnableHealthAndReflection();
  grpc::ServerBuilder builder;
  StartedServer started;
  builder.AddListeningPort(listen_address, ServerCredentialsFor(security), &started.port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  if (metrics != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> timing;
    timing.push_back(RpcMetricsInterceptors(metrics->registry()));
    builder.experimental().SetInterceptorCreators(std::move(timing));
  }
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return BindFailure(field, listen_address, *listen);
  }
  return started;
}

}  // namespace kvtier
