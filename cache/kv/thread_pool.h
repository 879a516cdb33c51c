// ThreadPool: a fixed set of worker threads that run data-parallel loops.
//
// ParallelFor(n, fn) runs fn(0) .. fn(n-1) on the calling thread and whichever workers join
// in time, handing out indices one at a time (so uneven tasks balance), and returns when all
// have finished. A worker joins a loop when it wakes while the loop still has indices to hand
// out; once the caller has run out of indices it waits only for the workers that joined, never
// for one still waking up, so a loop smaller than a thread's wake-up latency (on a VM, tens of
// microseconds) costs no more than running it on the caller. A pool of one thread has no
// workers: the caller runs everything.
//
// Thread-safe: any number of threads may call ParallelFor. One loop at a time has the workers
// (run_mu_); a loop that comes while another has them runs on its caller alone, never waiting.
// mu_ guards the published loop and the count of workers inside it.
#ifndef KVTIER_CACHE_KV_THREAD_POOL_H_
#define KVTIER_CACHE_KV_THREAD_POOL_H_

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace kvtier {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread; 0 means one per hardware thread.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t)> fn) ABSL_LOCKS_EXCLUDED(run_mu_);

 private:
  struct Loop {
    absl::FunctionRef<void(int64_t)> fn;
    int64_t n;
    std::atomic<int64_t> next{0};
  };

  void RunOnWorkers(int64_t n, absl::FunctionRef<void(int64_t)> fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(run_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  void WorkerMain();
  static void RunIndices(Loop& loop);

  absl::Mutex run_mu_;  // held by the loop that has the workers
  absl::Mutex mu_;
  Loop* loop_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped for each published loop
  int joined_workers_ ABSL_GUARDED_BY(mu_) = 0;   // workers inside the published loop
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_THREAD_POOL_H_
