// CoordinatorHarness: a Coordinator called directly, as its gRPC edge would, with an injected
// clock and shards that join and heartbeat on demand; and SessionDriver, one session as a
// front-end drives it (open, prompt, commit what it wrote, end the turn), tracking the context
// length and writer the coordinator expects. The coordinator calls shards through a
// FakeShardControl (unless the options name another ShardControl), which answers on the
// calling thread, so a callback-style method has answered by the time it returns (CallNow).
//
// Thread-compatible: one test thread.
#ifndef KVTIER_TESTS_SERVICE_COORDINATOR_HARNESS_H_
#define KVTIER_TESTS_SERVICE_COORDINATOR_HARNESS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/coordinator.h"
#include "tests/service/fake_shard_control.h"

namespace kvtier::test {

// Calls `method`, a callback-style Coordinator method, whose shard calls answer inline (as
// FakeShardControl's do): its answer, which came before the call returned (else a test
// failure and INTERNAL).
template <typename Request, typename Response>
absl::StatusOr<Response> CallNow(Coordinator& coordinator,
                                 void (Coordinator::*method)(const Request&, Callback<Response>),
                                 const Request& request) {
  std::optional<absl::StatusOr<Response>> answer;
  (coordinator.*method)(request, [&answer](absl::StatusOr<Response> result) {
    answer = std::move(result);
  });
  EXPECT_TRUE(answer.has_value()) << "the callback had not run when the call returned";
  if (!answer.has_value()) return absl::InternalError("no answer");
  return *std::move(answer);
}

class CoordinatorHarness {
 public:
  // `options` with its clock replaced by the harness's, and its shard_control, when null, by
  // the harness's FakeShardControl.
  explicit CoordinatorHarness(CoordinatorOptions options = {});

  Coordinator& coordinator() { return coordinator_; }
  // The fake the coordinator calls shards through (unless the options named another).
  FakeShardControl& shard_control() { return *shard_control_; }
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
  const std::shared_ptr<FakeShardControl> shard_control_ = std::make_shared<FakeShardControl>();
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
  // Forks the session (its shards answering inline); the fork, its writer the caller.
  absl::StatusOr<SessionDriver> Fork();

  const std::string& id() const { return id_; }
  int32_t context_len() const { return context_len_; }
  const v1::BlockLease& lease() const { return lease_; }

 private:
  SessionDriver(Coordinator* coordinator, std::string tenant, const v1::SessionInfo& session,
                const v1::WriterGrant& grant);
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
