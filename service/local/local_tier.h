// LocalTier: a whole tier in one process: a coordinator and N CPU shard workers, each its own
// gRPC server on loopback. The embedded default behind kvtier-local, and the fixture of the
// tier's tests, which also use it to crash, stop and restart shards.
//
// Secured as `security` says, on every server of the tier: with principals, the tier mints
// tokens of its own for its shards (role shard) and its coordinator (role coordinator) and adds
// them to those principals, so the caller lists only front-ends and operators; with TLS, the
// tier's own calls verify its servers with the same roots (the certificate must name the host).
// With `metrics`, the coordinator and every shard count into it (one scrape shows the tier).
//
// Thread-compatible: one thread drives it (the servers inside are thread-safe).
#ifndef KVTIER_SERVICE_LOCAL_LOCAL_TIER_H_
#define KVTIER_SERVICE_LOCAL_LOCAL_TIER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kvtier/v1/common.pb.h"
#include "proto/wire/metrics.h"
#include "proto/wire/security_config.h"
#include "service/coordinator_server.h"
#include "shard/pool_device.h"
#include "shard/shard_server.h"

namespace kvtier {

struct LocalTierOptions {
  int num_shards = 2;
  std::string host = "127.0.0.1";
  int coordinator_port = 0;  // 0: any free port
  int first_shard_port = 0;  // shard i listens on first_shard_port + i; 0: any free ports
  // Registered before the shards start; Start returns once its sessions can open.
  std::optional<v1::ModelSpec> model;
  CoordinatorOptions coordinator;
  int64_t shard_capacity_bytes = int64_t{1} << 30;
  // Where every shard keeps its pools (all on the same device, for CUDA).
  PoolDevice device;
  int attention_threads_per_shard = 1;
  // Every shard's ShardServerOptions::inline_kv_bytes.
  int64_t shard_inline_kv_bytes = ShardServerOptions{}.inline_kv_bytes;
  int max_message_bytes = 256 << 20;
  absl::Duration start_timeout = absl::Seconds(30);
  ServerSecurity security;
  // Where every server's metrics go (it must outlive the tier); null: each its own, not served.
  Metrics* metrics = nullptr;
};

class LocalTier {
 public:
  static absl::StatusOr<std::unique_ptr<LocalTier>> Start(const LocalTierOptions& options);

  const std::string& coordinator_address() const { return coordinator_->address(); }
  int num_shards() const { return static_cast<int>(shards_.size()); }
  const std::string& shard_address(int i) const { return shard_addresses_[i]; }
  Coordinator& coordinator() { return coordinator_->coordinator(); }

  // Shard i crashes: no deregistration; the coordinator notices when heartbeats stop.
  void KillShard(int i);
  // Shard i leaves cleanly: the coordinator drops its sessions at once.
  void StopShard(int i);
  // A new shard process on shard i's address (after Kill or Stop); returns once registered.
  absl::Status RestartShard(int i);

  // Waits until every head range of `model` is served, or DEADLINE_EXCEEDED.
  absl::Status WaitUntilReady(const std::string& model, absl::Duration timeout);

 private:
  explicit LocalTier(const LocalTierOptions& options) : options_(options) {}
  // Mints the tier's own credentials (see above) into security_, shard_channels_ and
  // coordinator_channels_.
  absl::Status SecureInternalCalls();
  absl::StatusOr<std::unique_ptr<ShardServer>> StartShard(const std::string& listen_address);

  const LocalTierOptions options_;
  ServerSecurity security_;               // the caller's, with the tier's own principals added
  ChannelSecurity shard_channels_;        // the shards' calls: TLS and the shard token
  ChannelSecurity coordinator_channels_;  // the coordinator's calls to shards
  std::unique_ptr<CoordinatorServer> coordinator_;
  std::vector<std::unique_ptr<ShardServer>> shards_;
  std::vector<std::string> shard_addresses_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_LOCAL_LOCAL_TIER_H_
