// CoordinatorServer: a Coordinator served over gRPC (SessionService, AdminService and
// ShardRegistry, plus grpc.health.v1 and reflection), with a background thread that sweeps
// silent shards and expired sessions and keeps health current: the server and its
// SessionService are SERVING once some model can open sessions, the registry and the admin
// plane from the start, and nothing once Shutdown begins (readiness is looked at every sweep,
// half a heartbeat interval). Its calls are timed into its metrics, and its stats exported
// there at every scrape (coordinator_metrics.h). Used by kvtier-coordinator, kvtier-local and the
// tests.
//
// Thread-safe; Shutdown (also run by the destructor) stops serving and joins the sweeper.
#ifndef KVTIER_SERVICE_COORDINATOR_SERVER_H_
#define KVTIER_SERVICE_COORDINATOR_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/server.h"
#include "proto/wire/metrics.h"
#include "proto/wire/security_config.h"
#include "proto/wire/serving_health.h"
#include "service/admin_service.h"
#include "service/coordinator.h"
#include "service/session_service.h"

namespace kvtier {

struct CoordinatorServerOptions {
  std::string listen_address = "127.0.0.1:0";  // port 0: an ephemeral port
  int max_message_bytes = 64 << 20;
  // TLS, and who may call which service (null principals: anyone). Its channels to shards are
  // coordinator.shard_channels.
  ServerSecurity security;
  CoordinatorOptions coordinator;
  // Where its metrics go (it must outlive the server); null: metrics of its own, not served.
  Metrics* metrics = nullptr;
};

class CoordinatorServer {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      const CoordinatorServerOptions& options);

  ~CoordinatorServer();

  // host:port it listens on, with the port bound.
  const std::string& address() const { return address_; }
  Coordinator& coordinator() { return coordinator_; }

  void Shutdown();

 private:
  explicit CoordinatorServer(const CoordinatorServerOptions& options);
  void SweepUntilShutdown();

  const CoordinatorServerOptions options_;
  const std::unique_ptr<Metrics> own_metrics_;  // when options_.metrics is null
  Metrics* const metrics_;
  Coordinator coordinator_;
  const std::unique_ptr<Metrics::Collected> collected_;  // the coordinator's stats
  SessionServiceImpl session_service_;
  AdminServiceImpl admin_service_;
  ShardRegistryImpl registry_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ServingHealth> health_;
  std::string address_;
  absl::Notification shutdown_;
  std::thread sweeper_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_COORDINATOR_SERVER_H_
