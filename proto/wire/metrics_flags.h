// --metrics_listen, the flag of every kvtier server binary that serves its metrics:
// host:port to serve Prometheus text on at GET /metrics (metrics.h); empty: not served
// (still counted).
#ifndef KVTIER_PROTO_WIRE_METRICS_FLAGS_H_
#define KVTIER_PROTO_WIRE_METRICS_FLAGS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "proto/wire/metrics.h"

namespace kvtier {

// This process's metrics, served where --metrics_listen says; errors name the flag.
absl::StatusOr<std::unique_ptr<Metrics>> MetricsFromFlags();

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_METRICS_FLAGS_H_
