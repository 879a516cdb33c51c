#include "tests/shard/fake_coordinator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/wire/server_builder.h"
#include "proto/wire/time_convert.h"

namespace kvtier {
namespace {

// Room for any tensor a test sends.
constexpr int kFakeMessageBytes = 64 << 20;

}  // namespace

FakeCoordinator::FakeCoordinator(std::string lease_key, std::vector<v1::HostedRange> ranges,
                                 int64_t heartbeat_interval_ms)
    : lease_key_(std::move(lease_key)),
      heartbeat_interval_ms_(heartbeat_interval_ms),
      ranges_(std::move(ranges)) {
  StartedServer started = StartServer("fake", "127.0.0.1:0", kFakeMessageBytes, {this}).value();
  server_ = std::move(started.server);
  address_ = absl::StrCat("127.0.0.1:", started.port);
}

FakeCoordinator::~FakeCoordinator() { server_->Shutdown(); }

void FakeCoordinator::SetRanges(std::vector<v1::HostedRange> ranges) {
  absl::MutexLock lock(&mu_);
  ranges_ = std::move(ranges);
}

void FakeCoordinator::ForgetShards() {
  absl::MutexLock lock(&mu_);
  forgotten_ = true;
}

void FakeCoordinator::RefuseRegistrations(int count) {
  absl::MutexLock lock(&mu_);
  registrations_to_refuse_ = count;
}

FakeCoordinator::Counts FakeCoordinator::counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

bool FakeCoordinator::WaitUntil(const std::function<bool(const Counts&)>& done) const {
  absl::MutexLock lock(&mu_);
  auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done(counts_); };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), absl::Seconds(10));
}

grpc::Status FakeCoordinator::RegisterShard(grpc::ServerContext* context,
                                            const v1::RegisterShardRequest* request,
                                            v1::RegisterShardResponse* response) {
  absl::MutexLock lock(&mu_);
  if (registrations_to_refuse_ > 0) {
    --registrations_to_refuse_;
    ++counts_.refused_registrations;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake coordinator: not yet");
  }
  ++counts_.registrations;
  counts_.heartbeats_since_registration = 0;
  counts_.last_registration = *request;
  forgotten_ = false;
  FillAssignment(response->mutable_assignment());
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::Heartbeat(grpc::ServerContext* context,
                                        const v1::HeartbeatRequest* request,
                                        v1::HeartbeatResponse* response) {
  absl::MutexLock lock(&mu_);
  if (forgotten_ || request->shard_id() != static_cast<uint64_t>(counts_.registrations)) {
    ++counts_.not_found_heartbeats;
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("fake coordinator: no shard ", request->shard_id()));
  }
  ++counts_.heartbeats;
  ++counts_.heartbeats_since_registration;
  counts_.ready_incarnations.assign(request->ready_incarnations().begin(),
                                    request->ready_incarnations().end());
  FillAssignment(response->mutable_assignment());
  return grpc::Status::OK;
}

grpc::Status FakeCoordinator::DeregisterShard(grpc::ServerContext* context,
                                              const v1::DeregisterShardRequest* request,
                                              v1::DeregisterShardResponse* response) {
  absl::MutexLock lock(&mu_);
  counts_.deregistered.push_back(request->shard_id());
  return grpc::Status::OK;
}

void FakeCoordinator::FillAssignment(v1::ShardAssignment* assignment) const {
  assignment->set_shard_id(counts_.registrations);
  assignment->set_lease_key(lease_key_);
  *assignment->mutable_heartbeat_interval() =
      ToProtoDuration(absl::Milliseconds(heartbeat_interval_ms_));
  for (const v1::HostedRange& range : ranges_) {
    v1::HostedRange* hosted = assignment->add_ranges();
    *hosted = range;
    hosted->set_incarnation(counts_.registrations);
  }
}

}  // namespace kvtier
