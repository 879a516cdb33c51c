// Metrics: one process's Prometheus metrics. Its registry holds the families that servers
// count into as things happen (RPC durations, shard steps); collectables added to it are
// computed afresh at every scrape (the coordinator's stats). Served over HTTP at
// GET /metrics on its own port (Serve), or not served at all (a test's, or a server's own when
// it was given none): what is counted is the same either way.
//
// Every family is named kvtier_*, with a unit suffix, and labels from bounded sets only; the
// list is in the README ("Metrics"). Every process also exports kvtier_build_info.
//
// Thread-safe: prometheus-cpp's registry, families and metrics are; the exposer takes its own
// lock around every scrape and every collectable added or removed.
#ifndef KVTIER_PROTO_WIRE_METRICS_H_
#define KVTIER_PROTO_WIRE_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace kvtier {

class Metrics {
 public:
  // Collects, serving nothing.
  Metrics();
  // Serves at GET /metrics on `listen_address` (host:port; port 0: any free port).
  // INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot be bound; both name
  // `field`.
  static absl::StatusOr<std::unique_ptr<Metrics>> Serve(absl::string_view field,
                                                        const std::string& listen_address);
  ~Metrics();

  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  prometheus::Registry& registry() { return *registry_; }

  // Scrapes collect `collectable` until the returned object is destroyed; destroying it waits
  // for a scrape in progress, so what the collectable reads may go right after.
  class Collected {
   public:
    ~Collected();
    Collected(const Collected&) = delete;
    Collected& operator=(const Collected&) = delete;

   private:
    friend class Metrics;
    Collected(prometheus::Exposer* exposer, std::shared_ptr<prometheus::Collectable> collectable)
        : exposer_(exposer), collectable_(std::move(collectable)) {}

    prometheus::Exposer* const exposer_;  // null when not served
    const std::shared_ptr<prometheus::Collectable> collectable_;
  };
  std::unique_ptr<Collected> Collect(std::shared_ptr<prometheus::Collectable> collectable);

  // The port served on; 0 when not served.
  int port() const { return port_; }

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_METRICS_H_
