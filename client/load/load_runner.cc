#include "client/load/load_runner.h"

#include <time.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/load/load_recorder.h"
#include "client/load/session_driver.h"
#include "client/load/workload.h"
#include "shard/pool_shape.h"

namespace kvtier {
namespace {

double ProcessCpuSeconds() {
  timespec cpu{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  return cpu.tv_sec + cpu.tv_nsec * 1e-9;
}

// Closed loop: each of config.sessions threads runs conversations one after another until
// `end` (one conversation each when there is no --duration).
void RunClosedSlot(int slot, const LoadConfig& config, const Workload& workload,
                   SessionDriver& driver, std::atomic<int64_t>& next, absl::Time end) {
  if (config.duration == absl::ZeroDuration()) {
    driver.Run(workload.Plan(slot), absl::Now(), absl::InfiniteFuture());
    return;
  }
  while (absl::Now() < end) driver.Run(workload.Plan(next++), absl::Now(), end);
}

// Open loop: a thread takes the next arrival, waits for its time if it is early, and runs it.
void RunOpenSlot(const std::vector<absl::Duration>& arrivals, const Workload& workload,
                 SessionDriver& driver, LoadRecorder& recorder, std::atomic<int64_t>& next,
                 absl::Time end) {
  for (int64_t index = next++; index < static_cast<int64_t>(arrivals.size()); index = next++) {
    const absl::Time intended = recorder.start() + arrivals[index];
    if (absl::Now() < intended) recorder.RecordSend(intended, SleepUntil(intended));
    driver.Run(workload.Plan(index), intended, end);
  }
}

}  // namespace

absl::StatusOr<LoadResult> RunLoad(const LoadConfig& config, const v1::ModelSpec& model,
                                   Client& client, int64_t corrupt_output, ProgressLine* progress) {
  absl::StatusOr<DType> dtype = DTypeFromProto(model.dtype());
  if (!dtype.ok()) return dtype.status();
  const Workload workload(config);
  const std::vector<absl::Duration> arrivals =
      config.mode == LoadMode::kOpen ? workload.Arrivals() : std::vector<absl::Duration>();
  const double cpu_start = ProcessCpuSeconds();
  LoadRecorder recorder(absl::Now(), config.warmup, config.slice);
  SessionDriver driver(config, model, *dtype, workload, client, recorder, corrupt_output);
  const absl::Time end = recorder.start() + config.warmup + config.duration;
  std::atomic<int64_t> next = 0;  // the next conversation (arrival) to start

  absl::Notification done;
  std::thread reporter([&] {
    if (progress == nullptr) return;
    while (!done.WaitForNotificationWithTimeout(config.progress_every)) {
      progress->Update(recorder.Progress(absl::Now()));
    }
    progress->Done();
  });
  std::vector<std::thread> threads;
  const int slots = config.mode == LoadMode::kClosed ? config.sessions : config.max_sessions;
  for (int slot = 0; slot < slots; ++slot) {
    threads.emplace_back([&, slot] {
      if (config.mode == LoadMode::kClosed) {
        RunClosedSlot(slot, config, workload, driver, next, end);
      } else {
        RunOpenSlot(arrivals, workload, driver, recorder, next, end);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done.Notify();
  reporter.join();

  LoadResult result = recorder.Finish(absl::Now());
  result.cost.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  result.cost.cores = static_cast<int>(std::thread::hardware_concurrency());
  return result;
}

}  // namespace kvtier
