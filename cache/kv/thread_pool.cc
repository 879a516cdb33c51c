#include "cache/kv/thread_pool.h"

#include <algorithm>

namespace kvtier {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(num_threads - 1);
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerMain(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::RunIndices(Loop& loop) {
  for (int64_t i = loop.next.fetch_add(1, std::memory_order_relaxed); i < loop.n;
       i = loop.next.fetch_add(1, std::memory_order_relaxed)) {
    loop.fn(i);
  }
}

void ThreadPool::ParallelFor(int64_t n, absl::FunctionRef<void(int64_t)> fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  absl::MutexLock run_lock(&run_mu_);
  Loop loop{fn, n};
  {
    absl::MutexLock lock(&mu_);
    loop_ = &loop;
    ++generation_;
  }
  RunIndices(loop);
  // Every index is handed out: a worker that wakes from now on has nothing to join.
  absl::MutexLock lock(&mu_);
  loop_ = nullptr;
  auto joined_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return joined_workers_ == 0; };
  mu_.Await(absl::Condition(&joined_done));
}

void ThreadPool::WorkerMain() {
  uint64_t seen = 0;
  while (true) {
    Loop* loop;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || generation_ != seen;
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      seen = generation_;
      loop = loop_;
      if (loop == nullptr) continue;  // woke after its loop was done
      ++joined_workers_;
    }
    RunIndices(*loop);
    absl::MutexLock lock(&mu_);
    --joined_workers_;
  }
}

}  // namespace kvtier
