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
  // NOTE: a loop that finds the workers busy with another runs on its caller rather than wait:
  // a small loop from a thread that must not block (a gRPC reaction) may come while a large
  // one runs.
  if (workers_.empty() || n == 1 || !run_mu_.TryLock()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  RunOnWorkers(n, fn);
  run_mu_.Unlock();
}

void ThreadPool::RunOnWorkers(int64_t n, absl::FunctionRef<void(int64_t)> fn) {
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
