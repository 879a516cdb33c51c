// FakeCoordinator: a kvtier.v1.ShardRegistryService served on an ephemeral 127.0.0.1 port, standing
// in for the coordinator in shard tests.
//
// Registration n (1, 2, ...) gets shard id n and the configured ranges with incarnation n, as a
// real coordinator gives a rejoining shard a new incarnation; heartbeats answer the same
// assignment, or NOT_FOUND after ForgetShards until the next registration. It counts every
// call, and can refuse registrations to exercise the shard's retries.
//
// Thread-safe: mu_ guards the configuration and the counts.
#ifndef KVTIER_TESTS_SHARD_FAKE_COORDINATOR_H_
#define KVTIER_TESTS_SHARD_FAKE_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/registry.grpc.pb.h"

namespace kvtier {

class FakeCoordinator final : public v1::ShardRegistryService::Service {
 public:
  struct Counts {
    int registrations = 0;  // answered with an assignment
    int refused_registrations = 0;
    int heartbeats = 0;  // answered with an assignment
    int heartbeats_since_registration = 0;
    std::vector<uint64_t> ready_incarnations;  // as the last heartbeat reported them
    int not_found_heartbeats = 0;
    std::vector<uint64_t> deregistered;  // shard ids
    v1::RegisterShardRequest last_registration;
  };

  // `ranges` are handed out with each registration's incarnation.
  FakeCoordinator(std::string lease_key, std::vector<v1::HostedRange> ranges,
                  int64_t heartbeat_interval_ms = 20);
  ~FakeCoordinator() override;

  const std::string& address() const { return address_; }

  // What the next answers assign (incarnations set as above).
  void SetRanges(std::vector<v1::HostedRange> ranges) ABSL_LOCKS_EXCLUDED(mu_);
  // Heartbeats answer NOT_FOUND until the shard registers again.
  void ForgetShards() ABSL_LOCKS_EXCLUDED(mu_);
  // The next `count` registrations are answered UNAVAILABLE.
  void RefuseRegistrations(int count) ABSL_LOCKS_EXCLUDED(mu_);

  Counts counts() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `done(counts)` holds; false after 10 s.
  bool WaitUntil(const std::function<bool(const Counts&)>& done) const ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status RegisterShard(grpc::ServerContext* context, const v1::RegisterShardRequest* request,
                             v1::RegisterShardResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status DeregisterShard(grpc::ServerContext* context,
                               const v1::DeregisterShardRequest* request,
                               v1::DeregisterShardResponse* response) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void FillAssignment(v1::ShardAssignment* assignment) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string lease_key_;
  const int64_t heartbeat_interval_ms_;

  mutable absl::Mutex mu_;
  std::vector<v1::HostedRange> ranges_ ABSL_GUARDED_BY(mu_);
  bool forgotten_ ABSL_GUARDED_BY(mu_) = false;
  int registrations_to_refuse_ ABSL_GUARDED_BY(mu_) = 0;
  Counts counts_ ABSL_GUARDED_BY(mu_);

  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kvtier

#endif  // KVTIER_TESTS_SHARD_FAKE_COORDINATOR_H_
