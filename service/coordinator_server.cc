#include "service/coordinator_server.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/wire/listen_address.h"
#include "proto/wire/log.h"
#include "proto/wire/server_builder.h"
#include "service/coordinator_metrics.h"

namespace kvtier {
namespace {

// The tenants the coordinator's metrics name: those with a quota of their own.
absl::flat_hash_set<std::string> TenantLabels(const CoordinatorOptions& options) {
  absl::flat_hash_set<std::string> tenants;
  for (const auto& [tenant, quota] : options.tenant_quotas) tenants.insert(tenant);
  return tenants;
}

}  // namespace

CoordinatorServer::CoordinatorServer(const CoordinatorServerOptions& options)
    : options_(options),
      own_metrics_(options.metrics == nullptr ? std::make_unique<Metrics>() : nullptr),
      metrics_(options.metrics == nullptr ? own_metrics_.get() : options.metrics),
      coordinator_(options.coordinator),
      collected_(metrics_->Collect(
          std::make_shared<CoordinatorMetrics>(&coordinator_, TenantLabels(options.coordinator)))),
      session_service_(&coordinator_, Authorizer(options.security.principals)),
      admin_service_(&coordinator_, Authorizer(options.security.principals)),
      registry_service_(&coordinator_, Authorizer(options.security.principals)) {}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const CoordinatorServerOptions& options) {
  auto server = absl::WrapUnique(new CoordinatorServer(options));
  absl::StatusOr<StartedServer> started =
      StartServer("listen_address", options.listen_address, options.max_message_bytes,
                  {&server->session_service_, &server->admin_service_, &server->registry_service_},
                  options.security, server->metrics_);
  if (!started.ok()) return started.status();
  server->server_ = std::move(started->server);
  server->health_ = std::make_unique<ServingHealth>(
      server->server_.get(),
      std::vector<std::string>{v1::AdminService::service_full_name(),
                               v1::ShardRegistryService::service_full_name()},
      std::vector<std::string>{v1::SessionService::service_full_name()});
  server->health_->SetReady(server->coordinator_.AnyModelReady());
  server->address_ = WithPort(options.listen_address, started->port);
  server->sweeper_ = std::thread([raw = server.get()] { raw->SweepUntilShutdown(); });
  Log(absl::StrCat("coordinator serving on ", server->address_));
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::Shutdown() {
  if (shutdown_.HasBeenNotified()) return;
  if (health_ != nullptr) health_->Drain();
  shutdown_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
  if (server_ == nullptr) return;  // Start failed
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
}

void CoordinatorServer::SweepUntilShutdown() {
  const absl::Duration period =
      std::max(absl::Milliseconds(10), options_.coordinator.heartbeat_interval / 2);
  while (!shutdown_.WaitForNotificationWithTimeout(period)) {
    coordinator_.Sweep();
    health_->SetReady(coordinator_.AnyModelReady());
  }
}

}  // namespace kvtier
