#include "proto/wire/serving_health.h"

#include <utility>

#include "grpcpp/health_check_service_interface.h"

namespace kvtier {

ServingHealth::ServingHealth(grpc::Server* server, std::vector<std::string> always_serving,
                             std::vector<std::string> when_ready)
    : health_(server->GetHealthCheckService()),
      always_serving_(std::move(always_serving)),
      when_ready_(std::move(when_ready)) {
  absl::MutexLock lock(&mu_);
  Publish();
}

void ServingHealth::SetReady(bool ready) {
  absl::MutexLock lock(&mu_);
  if (ready_ == ready) return;
  ready_ = ready;
  Publish();
}

void ServingHealth::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  Publish();
}

void ServingHealth::Publish() {
  if (health_ == nullptr) return;  // health checking off: nothing to tell
  const bool ready = ready_ && !draining_;
  health_->SetServingStatus("", ready);
  for (const std::string& service : when_ready_) health_->SetServingStatus(service, ready);
  for (const std::string& service : always_serving_) {
    health_->SetServingStatus(service, !draining_);
  }
}

}  // namespace kvtier
