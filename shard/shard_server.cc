#include "shard/shard_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/wire/listen_address.h"
#include "proto/wire/log.h"
#include "proto/wire/server_builder.h"

namespace kvtier {
namespace {

// How long calls in flight may run on after a clean Shutdown begins.
constexpr absl::Duration kShutdownGrace = absl::Seconds(1);

}  // namespace

absl::StatusOr<std::unique_ptr<ShardServer>> ShardServer::Start(const ShardServerOptions& options) {
  absl::StatusOr<HostPort> listen = ParseHostPort("listen_address", options.listen_address);
  if (!listen.ok()) return listen.status();
  if (!options.advertised_address.empty()) {
    absl::StatusOr<HostPort> advertised =
        ParseHostPort("advertised_address", options.advertised_address);
    if (!advertised.ok()) return advertised.status();
  }
  if (options.capacity_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity_bytes: expected > 0, got ", options.capacity_bytes));
  }
  if (options.attention_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention_threads: expected >= 0, got ", options.attention_threads));
  }
  if (options.step_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("step_threads: expected >= 1, got ", options.step_threads));
  }
  if (options.inline_kv_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("inline_kv_bytes: expected >= 0, got ", options.inline_kv_bytes));
  }
  if (options.max_streams < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_streams: expected >= 1, got ", options.max_streams));
  }
  if (absl::Status status = CheckPoolDevice("device", options.device); !status.ok()) {
    return status;
  }
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes: expected > 0, got ", options.max_message_bytes));
  }

  auto shard = std::unique_ptr<ShardServer>(new ShardServer(options));
  absl::StatusOr<StartedServer> started =
      StartServer("listen_address", options.listen_address, options.max_message_bytes,
                  {&shard->service_, &shard->transfer_service_, &shard->control_service_},
                  options.security, shard->metrics_);
  if (!started.ok()) return started.status();
  shard->server_ = std::move(started->server);
  shard->health_ = std::make_unique<ServingHealth>(
      shard->server_.get(),
      std::vector<std::string>{v1::ShardControlService::service_full_name(),
                               v1::BlockTransferService::service_full_name()},
      std::vector<std::string>{v1::AttentionService::service_full_name()});
  shard->port_ = started->port;
  shard->address_ = options.advertised_address.empty()
                        ? absl::StrCat(ReachableHost(listen->host), ":", shard->port_)
                        : options.advertised_address;
  shard->registration_ = std::make_unique<ShardRegistration>(
      RegistrationOptions{
          .coordinator_address = options.coordinator_address,
          .advertised_address = shard->address_,
          .capacity_bytes = options.capacity_bytes,
          .rpc_timeout = options.coordinator_rpc_timeout,
          .initial_backoff = options.registration_initial_backoff,
          .max_backoff = options.registration_max_backoff,
          .security = options.channels,
          .on_readiness = [health = shard->health_.get()](bool ready) { health->SetReady(ready); },
      },
      &shard->state_);
  const std::string bound = WithPort(options.listen_address, shard->port_);
  Log(absl::StrCat("shard serving on ", bound,
                   shard->address_ == bound ? "" : absl::StrCat(" as ", shard->address_),
                   ", pools on ", options.device.Name(), ", capacity ", options.capacity_bytes,
                   " bytes, coordinator ", options.coordinator_address));
  return shard;
}

ShardServer::ShardServer(const ShardServerOptions& options)
    : own_metrics_(options.metrics == nullptr ? std::make_unique<Metrics>() : nullptr),
      metrics_(options.metrics == nullptr ? own_metrics_.get() : options.metrics),
      shard_metrics_(metrics_->registry()),
      threads_(options.device.kind == PoolDevice::Kind::kCpu ? options.attention_threads : 1),
      state_(options.capacity_bytes, PoolFactoryFor(options.device, &threads_)),
      executor_(options.step_threads),
      service_(&state_, &executor_, &shard_metrics_, options.max_streams, options.inline_kv_bytes),
      transfer_service_(&state_,
                        BlockTransferOptions{.max_message_bytes = options.max_message_bytes,
                                             .default_deadline = absl::Minutes(5),
                                             .authorizer = Authorizer(options.security.principals),
                                             .source_channels = options.channels}),
      control_service_(&state_, Authorizer(options.security.principals)) {}

ShardServer::~ShardServer() { Shutdown(); }

bool ShardServer::WaitUntilRegistered(absl::Duration timeout) {
  return registration_->WaitUntilRegistered(timeout);
}

void ShardServer::Shutdown() {
  absl::MutexLock lock(&mu_);
  Stop(/*deregister=*/true, kShutdownGrace);
}

void ShardServer::Kill() {
  absl::MutexLock lock(&mu_);
  Stop(/*deregister=*/false, absl::ZeroDuration());
}

void ShardServer::Stop(bool deregister, absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  if (health_ != nullptr) health_->Drain();
  if (registration_ != nullptr) {
    registration_->Stop();
    if (deregister) registration_->Deregister();
  }
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  }
  state_.Reset();
}

}  // namespace kvtier
