// ControlPlaneTest: the fixture of the fork, invalidation and model-version tests. A
// Coordinator (CoordinatorHarness, shards answering through its FakeShardControl) with model
// "m" (TestModel: 2 layers, block 4, 2 KV heads over 2 slots, 64 blocks) on shards a:1 and
// b:1, and helpers that open and prefill sessions, invalidate, and probe what is cached.
//
// Thread-compatible: one test thread.
#ifndef KVTIER_TESTS_SERVICE_CONTROL_PLANE_FIXTURE_H_
#define KVTIER_TESTS_SERVICE_CONTROL_PLANE_FIXTURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kvtier/v1/admin.pb.h"
#include "tests/service/coordinator_harness.h"

namespace kvtier::test {

// `count` fresh random token ids.
std::vector<int32_t> RandomTokens(int count);
std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b);
// The first `count` of `tokens`.
std::vector<int32_t> Head(const std::vector<int32_t>& tokens, int count);

class ControlPlaneTest : public ::testing::Test {
 protected:
  static constexpr int kBlockSize = 4;
  static constexpr int kNumBlocks = 64;

  ControlPlaneTest();

  // TestModel "m" at `version`.
  static v1::ModelSpec Model(const std::string& version = "test");
  static v1::ModelId ModelId(const std::string& version = "test");

  // Opens a session (expected to succeed).
  SessionDriver Open(const std::string& tenant = "t", const v1::ModelId& model = ModelId());
  // Opens a session and prefills `prompt` (expected to succeed).
  SessionDriver Prefilled(const std::vector<int32_t>& prompt, const std::string& tenant = "t",
                          const v1::ModelId& model = ModelId());
  // How many of `prompt` a fresh session of `tenant` finds cached (closed again after).
  int32_t CachedFor(const std::vector<int32_t>& prompt, const std::string& tenant = "t",
                    const v1::ModelId& model = ModelId());

  absl::StatusOr<v1::InvalidationResult> InvalidateSession(const SessionDriver& session,
                                                           const std::string& tenant = "t");
  absl::StatusOr<v1::InvalidationResult> InvalidatePrefix(const std::vector<int32_t>& tokens,
                                                          const std::string& tenant = "t",
                                                          const v1::ModelId& model = ModelId());
  absl::StatusOr<v1::RetireModelResponse> Retire(const v1::ModelId& model, v1::RetireMode mode);

  FakeShardControl& shards() { return harness_.shard_control(); }
  v1::GetStatsResponse Stats() { return coordinator_.GetStats(); }

  CoordinatorHarness harness_;
  Coordinator& coordinator_;
};

// True when `status` is FAILED_PRECONDITION with reason INVALIDATED.
bool IsInvalidated(const absl::Status& status);

}  // namespace kvtier::test

#endif  // KVTIER_TESTS_SERVICE_CONTROL_PLANE_FIXTURE_H_
