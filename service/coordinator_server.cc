#include "service/coordinator_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "proto/wire/listen_address.h"

namespace kvtier {

CoordinatorServer::CoordinatorServer(const CoordinatorServerOptions& options)
    : options_(options),
      coordinator_(options.coordinator),
      session_service_(&coordinator_),
      registry_service_(&coordinator_) {}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const CoordinatorServerOptions& options) {
  if (absl::Status status = ParseHostPort("listen_address", options.listen_address).status();
      !status.ok()) {
    return status;
  }
  auto server = absl::WrapUnique(new CoordinatorServer(options));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(&server->session_service_);
  builder.RegisterService(&server->registry_service_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("listen: cannot serve on ", options.listen_address));
  }
  server->address_ = WithPort(options.listen_address, port);
  server->sweeper_ = std::thread([raw = server.get()] { raw->SweepUntilShutdown(); });
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::Shutdown() {
  if (shutdown_.HasBeenNotified()) return;
  shutdown_.Notify();
  sweeper_.join();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
}

void CoordinatorServer::SweepUntilShutdown() {
  const absl::Duration period =
      std::max(absl::Milliseconds(10), options_.coordinator.heartbeat_interval / 2);
  while (!shutdown_.WaitForNotificationWithTimeout(period)) coordinator_.Sweep();
}

}  // namespace kvtier
