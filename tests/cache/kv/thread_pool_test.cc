// ThreadPool: ParallelFor runs every index exactly once for pools of 1, 2 and 4 threads and
// loop sizes from 0 to large, a one-thread pool runs on the caller, workers join a loop that
// outlasts their wake-up, a loop that comes while another has the workers runs on its caller
// without waiting, concurrent callers all get correct results, thread counts are reported,
// and pools are destroyed cleanly while idle.
#include "cache/kv/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kvtier {
namespace {

constexpr int kThreadCounts[] = {1, 2, 4};
constexpr int64_t kLoopSizes[] = {0, 1, 2, 3, 7, 64, 1000, 100003};

// How many times ParallelFor(n) ran each index.
std::vector<int> CountVisits(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> visits(n);
  pool.ParallelFor(n, [&](int64_t i) { visits[i].fetch_add(1, std::memory_order_relaxed); });
  return std::vector<int>(visits.begin(), visits.end());
}

// Reports the first few indices not visited exactly once, with how often they were.
void ExpectEachOnce(const std::vector<int>& visits) {
  int reported = 0;
  for (size_t i = 0; i < visits.size() && reported < 5; ++i) {
    if (visits[i] != 1) {
      ADD_FAILURE() << "index " << i << " ran " << visits[i] << " times";
      ++reported;
    }
  }
}

class ThreadPoolTest : public testing::Test {};

TEST_F(ThreadPoolTest, ParallelForRunsEveryIndexOnce) {
  for (int threads : kThreadCounts) {
    ThreadPool pool(threads);
    for (int64_t n : kLoopSizes) {
      SCOPED_TRACE(absl::StrCat(threads, " threads, n = ", n));
      const std::vector<int> visits = CountVisits(pool, n);
      ASSERT_EQ(visits.size(), static_cast<size_t>(n));
      ExpectEachOnce(visits);
    }
  }
}

TEST_F(ThreadPoolTest, OneThreadPoolRunsOnTheCaller) {
  ThreadPool pool(1);
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<std::thread::id> ran_on(100);
  pool.ParallelFor(ran_on.size(), [&](int64_t i) { ran_on[i] = std::this_thread::get_id(); });
  EXPECT_EQ(std::count(ran_on.begin(), ran_on.end(), caller), 100);
}

// Each index of a long loop holds its thread until every thread of the pool has taken one, so
// the loop can only finish if every worker joins it.
TEST_F(ThreadPoolTest, WorkersJoinALoopThatOutlastsTheirWakeUp) {
  for (int threads : kThreadCounts) {
    SCOPED_TRACE(absl::StrCat(threads, " threads"));
    ThreadPool pool(threads);
    std::atomic<int> started{0};
    std::vector<std::thread::id> ran_on(threads);
    pool.ParallelFor(threads, [&](int64_t i) {
      ran_on[i] = std::this_thread::get_id();
      started.fetch_add(1);
      while (started.load() < threads) std::this_thread::yield();
    });
    std::sort(ran_on.begin(), ran_on.end());
    EXPECT_EQ(std::unique(ran_on.begin(), ran_on.end()) - ran_on.begin(), threads);
  }
}

// While one loop holds the pool's threads, another caller's loop runs at once on that caller.
TEST_F(ThreadPoolTest, ALoopWhileAnotherHasTheWorkersRunsOnItsCaller) {
  ThreadPool pool(2);
  absl::Notification release_first;
  std::atomic<int> first_started{0};
  std::thread first([&] {
    pool.ParallelFor(2, [&](int64_t) {
      first_started.fetch_add(1);
      release_first.WaitForNotification();
    });
  });
  while (first_started.load() == 0) std::this_thread::yield();
  absl::Notification second_done;
  std::vector<std::thread::id> ran_on(64);
  std::thread second([&] {
    pool.ParallelFor(ran_on.size(), [&](int64_t i) { ran_on[i] = std::this_thread::get_id(); });
    second_done.Notify();
  });
  const bool finished = second_done.WaitForNotificationWithTimeout(absl::Seconds(30));
  release_first.Notify();
  first.join();
  const std::thread::id second_id = second.get_id();
  second.join();
  ASSERT_TRUE(finished) << "the second loop waited for the first";
  EXPECT_EQ(std::count(ran_on.begin(), ran_on.end(), second_id), 64);
}

// Several threads share one pool, each running many loops of its own size; every loop must
// see each of its indices exactly once.
TEST_F(ThreadPoolTest, ConcurrentCallersAllGetCorrectResults) {
  constexpr int kCallers = 4;
  constexpr int kLoopsPerCaller = 50;
  for (int threads : kThreadCounts) {
    SCOPED_TRACE(absl::StrCat(threads, " threads"));
    ThreadPool pool(threads);
    std::vector<std::vector<std::vector<int>>> results(kCallers);
    std::vector<std::thread> callers;
    for (int c = 0; c < kCallers; ++c) {
      callers.emplace_back([&pool, &results, c] {
        for (int loop = 0; loop < kLoopsPerCaller; ++loop) {
          results[c].push_back(CountVisits(pool, 100 + 37 * c + loop));
        }
      });
    }
    for (std::thread& caller : callers) caller.join();
    for (int c = 0; c < kCallers; ++c) {
      ASSERT_EQ(results[c].size(), static_cast<size_t>(kLoopsPerCaller));
      for (int loop = 0; loop < kLoopsPerCaller; ++loop) {
        SCOPED_TRACE(absl::StrCat("caller ", c, ", loop ", loop));
        ASSERT_EQ(results[c][loop].size(), static_cast<size_t>(100 + 37 * c + loop));
        ExpectEachOnce(results[c][loop]);
      }
    }
  }
}

TEST_F(ThreadPoolTest, ReportsThreadCount) {
  for (int threads : {1, 2, 4, 8}) EXPECT_EQ(ThreadPool(threads).num_threads(), threads);
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(ThreadPool(0).num_threads(), hardware);
}

// Destroying a pool right after construction (workers possibly not yet waiting) or after
// loops must join every worker without hanging.
TEST_F(ThreadPoolTest, DestructionWhileIdleIsClean) {
  for (int round = 0; round < 50; ++round) {
    for (int threads : kThreadCounts) {
      auto fresh = std::make_unique<ThreadPool>(threads);
      fresh.reset();

      auto used = std::make_unique<ThreadPool>(threads);
      ExpectEachOnce(CountVisits(*used, 16));
      used.reset();
    }
  }
}

}  // namespace
}  // namespace kvtier
