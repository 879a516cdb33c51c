// ShardServer: a running shard worker: the gRPC server with kvtier.v1.AttentionService,
// kvtier.v1.BlockTransferService, kvtier.v1.ShardControlService, grpc.health.v1 and reflection,
// the attention thread pool, the data plane's step executor, the hosted state, and the
// registration with the coordinator. kvtier-shard runs one; tests and kvtier-local run several
// in one process.
//
// Health: the server and its AttentionService are SERVING once the shard is registered and
// hosts its head ranges (ShardRegistration's on_readiness); ShardControlService and
// BlockTransferService from the start; nothing once Shutdown or Kill begins. Its calls are
// timed, and its steps counted, in its metrics (shard_metrics.h).
//
// Shutdown leaves the tier cleanly (deregisters, so the coordinator fails the shard's sessions
// at once); Kill stops serving and heartbeating without a word and drops the pools, which is
// what a crash looks like to the coordinator. Either is final; the destructor shuts down if
// neither ran.
//
// Thread-safe. mu_ serializes Shutdown and Kill and guards whether one has run.
#ifndef KVTIER_SHARD_SHARD_SERVER_H_
#define KVTIER_SHARD_SHARD_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache/kv/thread_pool.h"
#include "grpcpp/grpcpp.h"
#include "proto/wire/metrics.h"
#include "proto/wire/security_config.h"
#include "proto/wire/serving_health.h"
#include "shard/attention_service.h"
#include "shard/block_transfer_service.h"
#include "shard/pool_device.h"
#include "shard/registration.h"
#include "shard/shard_control_service.h"
#include "shard/shard_metrics.h"
#include "shard/shard_state.h"
#include "shard/step_executor.h"

namespace kvtier {

struct ShardServerOptions {
  // host:port to listen on; port 0 picks a free one (see ShardServer::port()).
  std::string listen_address = "127.0.0.1:0";
  // host:port the coordinator hands to clients; empty: the listen host (this machine's host
  // name for a wildcard host such as 0.0.0.0) and the bound port.
  std::string advertised_address;
  std::string coordinator_address = "127.0.0.1:50051";
  // What the shard may spend on K/V pools.
  int64_t capacity_bytes = int64_t{4} << 30;
  // Where the pools live and attention runs.
  PoolDevice device;
  // CPU attention threads, the calling one included; 0: one per hardware thread.
  int attention_threads = 0;
  // Threads that run the data plane's larger layers (K/V writes, attention calls).
  int step_threads = 2;
  // A layer whose attention reads at most this many bytes of K/V runs on the gRPC thread that
  // received it, not on a step thread (step_stream.h); 0: every layer goes to a step thread.
  int64_t inline_kv_bytes = 512 << 10;
  // Step streams served at once; more are refused with RESOURCE_EXHAUSTED.
  int max_streams = 256;
  // Largest message received or sent.
  int max_message_bytes = 256 << 20;
  // Registration retries wait initial_backoff, doubling up to max_backoff.
  absl::Duration registration_initial_backoff = absl::Milliseconds(100);
  absl::Duration registration_max_backoff = absl::Seconds(5);
  // Deadline of every call to the coordinator.
  absl::Duration coordinator_rpc_timeout = absl::Seconds(5);
  // TLS, and who may call (null principals: anyone). AttentionService needs no principal: its
  // capability is the coordinator's signed lease.
  ServerSecurity security;
  // How its calls (registration, pulls from other shards) are secured: its credential.
  ChannelSecurity channels;
  // Where its metrics go (it must outlive the server); null: metrics of its own, not served.
  Metrics* metrics = nullptr;
};

class ShardServer {
 public:
  // Starts serving and registering (in the background; see WaitUntilRegistered).
  // INVALID_ARGUMENT for bad options (naming them), UNAVAILABLE when the address cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<ShardServer>> Start(const ShardServerOptions& options);

  ~ShardServer();

  ShardServer(const ShardServer&) = delete;
  ShardServer& operator=(const ShardServer&) = delete;

  // The advertised address (host:port) and the bound port.
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // Waits until the coordinator has registered this shard; false if `timeout` passes first.
  bool WaitUntilRegistered(absl::Duration timeout);

  // Clean exit: stops heartbeating, deregisters, stops serving (calls in flight get a short
  // grace period, then are cancelled) and frees the pools. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // A crash, as the coordinator sees it: stops heartbeating and serving at once, without
  // deregistering, and drops the pools. Idempotent; Shutdown after it does nothing.
  void Kill() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit ShardServer(const ShardServerOptions& options);

  // Stops the registration thread, then the server within `grace`, then frees the pools.
  void Stop(bool deregister, absl::Duration grace) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Set by Start, before the server is handed out.
  int port_ = 0;
  std::string address_;
  const std::unique_ptr<Metrics> own_metrics_;  // when the options name none
  Metrics* const metrics_;
  ShardMetrics shard_metrics_;
  ThreadPool threads_;  // outlives the pools that run attention on it
  ShardState state_;
  StepExecutor executor_;  // outlives the server, whose streams post to it
  AttentionServiceImpl service_;
  BlockTransferServiceImpl transfer_service_;
  ShardControlServiceImpl control_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ServingHealth> health_;
  std::unique_ptr<ShardRegistration> registration_;

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_SHARD_SERVER_H_
