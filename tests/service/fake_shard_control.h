// FakeShardControl: a ShardControl that answers every call on the calling thread, OK unless a
// failure is scripted for the shard's address, and records each call (address and request) in
// the order made, so tests can check what the coordinator told each shard.
//
// Thread-safe: one mutex guards the recorded calls and the scripted failures; `done` runs
// without it.
#ifndef KVTIER_TESTS_SERVICE_FAKE_SHARD_CONTROL_H_
#define KVTIER_TESTS_SERVICE_FAKE_SHARD_CONTROL_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kvtier/v1/shard_control.pb.h"
#include "service/shard_control.h"

namespace kvtier::test {

class FakeShardControl : public ShardControl {
 public:
  // One call as the coordinator made it.
  template <typename Request>
  struct Call {
    std::string address;
    Request request;
  };

  void Revoke(const std::string& address, const v1::RevokeRequest& request, Done done) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void CopyBlocks(const std::string& address, const v1::CopyBlocksRequest& request,
                  Done done) override ABSL_LOCKS_EXCLUDED(mu_);

  // Every later Revoke (CopyBlocks) to `address` answers `status`; OK: answers OK again.
  void FailRevokes(const std::string& address, absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  void FailCopies(const std::string& address, absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  // The calls made so far, in order.
  std::vector<Call<v1::RevokeRequest>> revokes() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<Call<v1::CopyBlocksRequest>> copies() const ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the calls recorded so far (the scripted failures stay).
  void ClearCalls() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Records `request` to `address` in `calls` and returns what `failures` scripts for it.
  template <typename Request>
  absl::Status Record(const std::string& address, const Request& request,
                      std::vector<Call<Request>>& calls,
                      const absl::flat_hash_map<std::string, absl::Status>& failures)
      ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::vector<Call<v1::RevokeRequest>> revokes_ ABSL_GUARDED_BY(mu_);
  std::vector<Call<v1::CopyBlocksRequest>> copies_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Status> revoke_failures_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Status> copy_failures_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_SERVICE_FAKE_SHARD_CONTROL_H_
