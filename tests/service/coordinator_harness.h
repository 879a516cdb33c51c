// CoordinatorHarness: a Coordinator called directly, as its gRPC edge would, with an injected
// clock and shards that join and heartbeat on demand; and SessionDriver, one session as a
// front-end drives it (open, prompt, commit what it wrote, end the turn), tracking the context
// length and writer the coordinator expects.
//
// Thread-compatible: one test thread.
#ifndef KVTIER_TESTS_SERVICE_COORDINATOR_HARNESS_H_
#define KVTIER_TESTS_SERVICE_COORDINATOR_HARNESS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "service/coordinator.h"

namespace kvtier::test {

// The answer of a callback-style coordinator call, waited for.
template <typename Request, typename Response>
absl::StatusOr<Response> Await(Coordinator& coordinator,
                               void (Coordinator::*call)(const Request&, Callback<Response>),
                               const Request& request) {
  absl::StatusOr<Response> answer;
  absl::Notification done;
  (coordinator.*call)(request, [&](absl::StatusOr<Response> result) {
    answer = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return answer;
}

class CoordinatorHarness {
 public:
  // `options` with its clock replaced by the harness's.
  explicit CoordinatorHarness(CoordinatorOptions options = {});

  Coordinator& coordinator() { return coordinator_; }
  absl::Time now() const { return now_; }

  // Registers a shard at `address` and reports its ranges ready; its id.
  uint64_t JoinShard(const std::string& address, int64_t capacity = int64_t{1} << 30);
  // A heartbeat that reports every assigned range ready.
  v1::ShardAssignment Beat(uint64_t shard_id);
  // Moves the clock by `duration`, every joined shard heartbeating, then sweeps.
  void Advance(absl::Duration duration);
  // Moves the clock only.
  void AdvanceClock(absl::Duration duration) { now_ += duration; }

  v1::ModelStats Stats(int model = 0) { return coordinator_.GetStats().models(model); }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  Coordinator coordinator_;
  std::vector<uint64_t> shards_;
};

class SessionDriver {
 public:
  // Opens a session of `model` for `tenant`.
  static absl::StatusOr<SessionDriver> Open(Coordinator& coordinator, const v1::ModelId& model,
                                            const std::string& tenant);

  // Extend with `next_tokens` (a prompt), nothing to commit: the answer says how many are
  // cached; the context grows by those.
  absl::StatusOr<v1::ExtendResponse> Prompt(const std::vector<int32_t>& next_tokens,
                                            int32_t reserve_tokens = 0);
  // Extend committing `tokens` as written, reserving `reserve_tokens` more.
  absl::StatusOr<v1::ExtendResponse> Commit(const std::vector<int32_t>& tokens,
                                            int32_t reserve_tokens = 0);
  // Prompt, then commit the uncached rest as written: a prefill. Its cached token count.
  absl::StatusOr<int32_t> Prefill(const std::vector<int32_t>& prompt);
  absl::StatusOr<v1::EndTurnResponse> EndTurn(const std::vector<int32_t>& tokens,
                                              absl::Duration retain_for);
  absl::Status Close();
  // Takes the session over as a new writer.
  absl::Status TakeOver();

  const std::string& id() const { return id_; }
  int32_t context_len() const { return context_len_; }
  const v1::BlockLease& lease() const { return lease_; }

 private:
  SessionDriver(Coordinator* coordinator, std::string tenant,
                const v1::OpenSessionResponse& opened);
  absl::StatusOr<v1::ExtendResponse> Extend(const std::vector<int32_t>& tokens,
                                            const std::vector<int32_t>& next_tokens,
                                            int32_t reserve_tokens);

  Coordinator* coordinator_;
  std::string tenant_;
  std::string id_;
  uint64_t writer_ = 0;
  int32_t context_len_ = 0;
  v1::BlockLease lease_;
};

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_SERVICE_COORDINATOR_HARNESS_H_
