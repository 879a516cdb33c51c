#include "proto/wire/metrics_flags.h"

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, metrics_listen, "",
          "host:port to serve Prometheus metrics on, at GET /metrics (e.g. 0.0.0.0:9464; port "
          "0: any free port); empty: not served");

namespace kvtier {

absl::StatusOr<std::unique_ptr<Metrics>> MetricsFromFlags() {
  const std::string address = absl::GetFlag(FLAGS_metrics_listen);
  if (address.empty()) return std::make_unique<Metrics>();
  return Metrics::Serve("--metrics_listen", address);
}

}  // namespace kvtier
