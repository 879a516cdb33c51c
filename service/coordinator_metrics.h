// CoordinatorMetrics: the coordinator's Prometheus families, computed at every scrape from its
// own stats (Coordinator::GetStats, what kvtier-ctl stats prints), so the two always agree.
// Per model version (labels model, version): gauges of readiness, live shards, sessions and
// blocks by state; counters of prompt tokens looked up and found cached, blocks cached,
// evictions, retentions, forks, invalidated sessions and blocks, sessions lost. For the whole
// tier: live shards, invalidations by scope, models retired, shards dropped. The README lists
// them ("Metrics").
//
// Tenants: the per-tenant counters carry a tenant label only for the tenants named in
// `tenants` (the coordinator's --tenant_quotas); every other tenant is added up under
// tenant="other", so the label set stays as bounded as the configuration.
//
// Thread-safe: Collect only reads the coordinator, which locks itself.
#ifndef KVTIER_SERVICE_COORDINATOR_METRICS_H_
#define KVTIER_SERVICE_COORDINATOR_METRICS_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "service/coordinator.h"

namespace kvtier {

class CoordinatorMetrics final : public prometheus::Collectable {
 public:
  // `coordinator` must outlive the collection (Metrics::Collected).
  CoordinatorMetrics(Coordinator* coordinator, absl::flat_hash_set<std::string> tenants)
      : coordinator_(coordinator), tenants_(std::move(tenants)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Coordinator* const coordinator_;
  const absl::flat_hash_set<std::string> tenants_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICE_COORDINATOR_METRICS_H_
