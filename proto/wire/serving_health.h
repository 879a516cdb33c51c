// ServingHealth: what a kvtier server's grpc.health.v1 answers, for the server as a whole (the
// empty service name) and for each of its services by full name. Services that take calls as
// soon as the server runs (a registry, an admin plane) answer SERVING at once; the server and
// the services that need it ready (the coordinator's SessionService once a model can open
// sessions; a shard's AttentionService once it is registered and hosts its head ranges)
// answer NOT_SERVING until SetReady(true). Drain, on the way down, makes everything
// NOT_SERVING for good, so probes and load balancers stop sending calls before the server
// stops taking them.
//
// Thread-safe: mu_ guards the readiness and whether it drains.
#ifndef KVTIER_PROTO_WIRE_SERVING_HEALTH_H_
#define KVTIER_PROTO_WIRE_SERVING_HEALTH_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server.h"

namespace kvtier {

class ServingHealth {
 public:
  // `server` (started with health checking on, StartServer) must outlive this object.
  ServingHealth(grpc::Server* server, std::vector<std::string> always_serving,
                std::vector<std::string> when_ready);

  void SetReady(bool ready) ABSL_LOCKS_EXCLUDED(mu_);
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::HealthCheckServiceInterface* const health_;
  const std::vector<std::string> always_serving_;
  const std::vector<std::string> when_ready_;
  absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_SERVING_HEALTH_H_
