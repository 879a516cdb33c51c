// ShardRegistration: this shard's membership in the tier, kept by a background thread talking
// to the coordinator's kvtier.v1.ShardRegistryService.
//
// The thread registers (retrying with exponential backoff until the coordinator answers),
// applies the assignment it gets to the ShardState, heartbeats at once to report the ranges
// ready, then heartbeats every heartbeat_interval of the latest assignment, reporting the
// ranges ready and applying each answer. A heartbeat answered NOT_FOUND means the coordinator
// dropped this shard: the state is reset (the K/V it held is void) and the thread registers
// again. Every registration starts from an empty state, since it brings a new incarnation and
// lease key. Every call has a deadline; other failures are retried at the next beat.
//
// Thread-safe. mu_ guards the membership (registered_, shard_id_), the stop flag and the
// context of the call in flight, so Stop can cancel it.
#ifndef KVTIER_SHARD_REGISTRATION_H_
#define KVTIER_SHARD_REGISTRATION_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvtier/v1/registry.grpc.pb.h"
#include "proto/wire/security_config.h"
#include "shard/shard_state.h"

namespace kvtier {

struct RegistrationOptions {
  std::string coordinator_address;  // host:port of kvtier.v1.ShardRegistryService
  std::string advertised_address;   // host:port where this shard serves kvtier.v1.AttentionService
  int64_t capacity_bytes = 0;
  absl::Duration rpc_timeout = absl::Seconds(5);
  // Registration retries wait initial_backoff, doubling up to max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // How the channel to the coordinator is secured (the shard's credential).
  ChannelSecurity security;
  // Told, from the registration thread, after every registration and heartbeat whether the
  // shard is ready: registered, and hosting every head range it was assigned (at least one).
  std::function<void(bool ready)> on_readiness = [](bool) {};
};

class ShardRegistration {
 public:
  // Starts the thread. `state` must outlive this object.
  ShardRegistration(const RegistrationOptions& options, ShardState* state);
  // Stops the thread (without deregistering).
  ~ShardRegistration();

  ShardRegistration(const ShardRegistration&) = delete;
  ShardRegistration& operator=(const ShardRegistration&) = delete;

  // Waits until the shard is registered; false if `timeout` passes first.
  bool WaitUntilRegistered(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops registering and heartbeating, cancelling a call in flight, and joins the thread.
  // Idempotent; called by the owner, one thread at a time.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Leaves the tier: DeregisterShard if registered, best-effort (a failure is logged: the
  // coordinator drops the shard when its heartbeats stop anyway). Call after Stop, or the
  // thread would register again at the next beat.
  void Deregister() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Registers once, from an empty state; on success the state holds the new assignment.
  absl::Status Register() ABSL_LOCKS_EXCLUDED(mu_);
  // Heartbeats once, reporting the ready ranges, and applies the answer; NOT_FOUND marks the
  // shard unregistered.
  absl::Status Heartbeat() ABSL_LOCKS_EXCLUDED(mu_);
  // Applies an assignment from the coordinator, logging ranges that could not be hosted and,
  // when it changes, why the coordinator has no range for this shard.
  void Adopt(const v1::ShardAssignment& assignment) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `call` with a deadline, cancellable by Stop (cancelled at once when stopped).
  absl::Status Call(absl::string_view method,
                    absl::FunctionRef<grpc::Status(grpc::ClientContext*)> call)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::chrono::system_clock::time_point Deadline() const;
  // Sleeps for `duration` unless stopped first; false when stopped.
  bool SleepUnlessStopped(absl::Duration duration) ABSL_LOCKS_EXCLUDED(mu_);

  const RegistrationOptions options_;
  ShardState* const state_;
  const std::unique_ptr<v1::ShardRegistryService::Stub> stub_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t shard_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string no_room_reason_;  // the latest assignment's; used by the thread only

  std::thread thread_;  // started last, joined by Stop
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_REGISTRATION_H_
