#include "proto/wire/metrics.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/gauge.h"
#include "proto/wire/listen_address.h"

namespace kvtier {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("kvtier_build_info")
      .Help("Always 1; the kvtier version that runs, as a label")
      .Register(*registry_)
      .Add({{"version", KVTIER_VERSION}})
      .Set(1);
}

Metrics::~Metrics() = default;

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Serve(absl::string_view field,
                                                        const std::string& listen_address) {
  if (absl::Status status = ParseHostPort(field, listen_address).status(); !status.ok()) {
    return status;
  }
  auto metrics = std::make_unique<Metrics>();
  // NOTE: prometheus-cpp throws when civetweb cannot listen; kvtier's APIs do not.
  try {
    metrics->exposer_ = std::make_unique<prometheus::Exposer>(listen_address);
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat(field, ": cannot serve metrics on ", listen_address, ": ", error.what()));
  }
  const std::vector<int> ports = metrics->exposer_->GetListeningPorts();
  metrics->port_ = ports.empty() ? 0 : ports.front();
  metrics->exposer_->RegisterCollectable(metrics->registry_);
  return metrics;
}

std::unique_ptr<Metrics::Collected> Metrics::Collect(
    std::shared_ptr<prometheus::Collectable> collectable) {
  if (exposer_ != nullptr) exposer_->RegisterCollectable(collectable);
  return absl::WrapUnique(new Collected(exposer_.get(), std::move(collectable)));
}

Metrics::Collected::~Collected() {
  if (exposer_ != nullptr) exposer_->RemoveCollectable(collectable_);
}

}  // namespace kvtier
