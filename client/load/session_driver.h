// SessionDriver: runs the conversations of a run through the tier, each as a front-end would:
// OpenSession for its tenant; per turn, Extend with the prompt (turn 1: the shared prompt, its
// prefix group's system prompt or a replayed request's prompt, then the session's own tokens;
// later turns: the new message) and one prefill step over the
// tokens not found cached, then one decode step per reply token (Extend one token, a step over
// every layer); EndTurn with the retention; think time; the next turn; Close. Every step sends
// q, k and v of every layer (StepTensors), and what it measures goes to the LoadRecorder. A
// verified conversation checks every output against its SessionVerifier.
//
// Thread-safe: Run may be called from many threads at once, each call with its own session.
#ifndef KVTIER_CLIENT_LOAD_SESSION_DRIVER_H_
#define KVTIER_CLIENT_LOAD_SESSION_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <optional>

#include "absl/time/time.h"
#include "cache/kv/dtype.h"
#include "client/client.h"
#include "client/load/load_config.h"
#include "client/load/load_recorder.h"
#include "client/load/workload.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

class SessionDriver {
 public:
  // `corrupt_output`: the verified output (counted from 1, over the whole run) that is made
  // wrong before its check, to test that verification catches it; 0 for none.
  SessionDriver(const LoadConfig& config, const v1::ModelSpec& model, DType dtype,
                const Workload& workload, Client& client, LoadRecorder& recorder,
                int64_t corrupt_output);

  // Runs conversation `plan`, meant to start at `intended`. No turn starts at or after
  // `no_turn_after` (InfiniteFuture: all turns run).
  void Run(const ConversationPlan& plan, absl::Time intended, absl::Time no_turn_after);

 private:
  class Conversation;  // session_driver.cc

  const LoadConfig& config_;
  const v1::ModelSpec model_;
  const DType dtype_;
  const Workload& workload_;
  Client& client_;
  LoadRecorder& recorder_;
  const int64_t corrupt_output_;
  std::atomic<int64_t> verified_outputs_ = 0;
};

// Sleeps until `at`; returns when it woke.
absl::Time SleepUntil(absl::Time at);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_SESSION_DRIVER_H_
