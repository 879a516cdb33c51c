#include "service/local/local_tier.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kvtier {
namespace {

// `status` with its message prefixed by which server of the tier it concerns.
absl::Status Concerning(absl::string_view server, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(server, ": ", status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalTier>> LocalTier::Start(const LocalTierOptions& options) {
  if (options.num_shards < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_shards: expected >= 1, got ", options.num_shards));
  }
  auto tier = absl::WrapUnique(new LocalTier(options));
  if (absl::Status status = tier->SecureInternalCalls(); !status.ok()) return status;
  CoordinatorServerOptions coordinator;
  coordinator.listen_address = absl::StrCat(options.host, ":", options.coordinator_port);
  coordinator.max_message_bytes = options.max_message_bytes;
  coordinator.security = tier->security_;
  coordinator.metrics = options.metrics;
  coordinator.coordinator = options.coordinator;
  coordinator.coordinator.shard_channels = tier->coordinator_channels_;
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start(coordinator);
  if (!server.ok()) return Concerning("coordinator", server.status());
  tier->coordinator_ = *std::move(server);
  if (options.model.has_value()) {
    if (absl::Status status = tier->coordinator().RegisterModel(*options.model).status();
        !status.ok()) {
      return status;
    }
  }
  for (int i = 0; i < options.num_shards; ++i) {
    const int port = options.first_shard_port == 0 ? 0 : options.first_shard_port + i;
    absl::StatusOr<std::unique_ptr<ShardServer>> shard =
        tier->StartShard(absl::StrCat(options.host, ":", port));
    if (!shard.ok()) return Concerning(absl::StrCat("shard ", i), shard.status());
    tier->shard_addresses_.push_back((*shard)->address());
    tier->shards_.push_back(*std::move(shard));
  }
  if (options.model.has_value()) {
    if (absl::Status status =
            tier->WaitUntilReady(options.model->id().name(), options.start_timeout);
        !status.ok()) {
      return status;
    }
  }
  return tier;
}

absl::Status LocalTier::SecureInternalCalls() {
  security_ = options_.security;
  shard_channels_.tls = coordinator_channels_.tls = security_.tls;
  if (security_.principals == nullptr) return absl::OkStatus();
  auto principals = std::make_shared<Principals>(*security_.principals);
  shard_channels_.token = NewToken();
  coordinator_channels_.token = NewToken();
  for (auto [token, role] : {std::pair{&shard_channels_.token, Role::kShard},
                             std::pair{&coordinator_channels_.token, Role::kCoordinator}}) {
    Principal principal{.name = absl::StrCat("kvtier-local's ", RoleName(role)),
                        .roles = {role},
                        .tenants = {},
                        .any_tenant = false};
    if (absl::Status status = principals->AddToken(*token, std::move(principal)); !status.ok()) {
      return status;
    }
  }
  security_.principals = std::move(principals);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ShardServer>> LocalTier::StartShard(
    const std::string& listen_address) {
  ShardServerOptions shard;
  shard.listen_address = listen_address;
  shard.coordinator_address = coordinator_->address();
  shard.capacity_bytes = options_.shard_capacity_bytes;
  shard.device = options_.device;
  shard.attention_threads = options_.attention_threads_per_shard;
  shard.inline_kv_bytes = options_.shard_inline_kv_bytes;
  shard.max_message_bytes = options_.max_message_bytes;
  shard.security = security_;
  shard.metrics = options_.metrics;
  shard.channels = shard_channels_;
  absl::StatusOr<std::unique_ptr<ShardServer>> server = ShardServer::Start(shard);
  if (!server.ok()) return server.status();
  if (!(*server)->WaitUntilRegistered(options_.start_timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("shard at ", (*server)->address(),
                                                    " did not register within ",
                                                    absl::FormatDuration(options_.start_timeout)));
  }
  return server;
}

void LocalTier::KillShard(int i) { shards_[i]->Kill(); }

void LocalTier::StopShard(int i) { shards_[i]->Shutdown(); }

absl::Status LocalTier::RestartShard(int i) {
  shards_[i]->Kill();
  absl::StatusOr<std::unique_ptr<ShardServer>> shard = StartShard(shard_addresses_[i]);
  if (!shard.ok()) return shard.status();
  shards_[i] = *std::move(shard);
  return absl::OkStatus();
}

absl::Status LocalTier::WaitUntilReady(const std::string& model, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    const v1::GetStatsResponse stats_now = coordinator().GetStats();
    for (const v1::ModelStats& stats : stats_now.models()) {
      if (stats.model().id().name() == model && stats.ready()) return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "model ", model, ": not every head range served after ", absl::FormatDuration(timeout)));
}

}  // namespace kvtier
