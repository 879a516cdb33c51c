// StepExecutor: the shard's bounded pool for data-plane work. The Step streams' reactions
// (gRPC callback threads, which must never block) hand each received message to it, and one
// of its `num_threads` threads checks it, writes its K/V and runs its attention, then starts
// the stream's write. Tasks run in the order they were posted (no stream starves another);
// each stream has at most one task queued or running, so the queue is bounded by the shard's
// stream limit.
//
// Thread-safe: mu_ guards the queue and the stopping flag. The destructor runs what is queued,
// then joins the threads.
#ifndef KVTIER_SHARD_STEP_EXECUTOR_H_
#define KVTIER_SHARD_STEP_EXECUTOR_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace kvtier {

class StepExecutor {
 public:
  explicit StepExecutor(int num_threads);
  ~StepExecutor();

  StepExecutor(const StepExecutor&) = delete;
  StepExecutor& operator=(const StepExecutor&) = delete;

  void Post(absl::AnyInvocable<void() &&> task) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void WorkerMain() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvtier

#endif  // KVTIER_SHARD_STEP_EXECUTOR_H_
