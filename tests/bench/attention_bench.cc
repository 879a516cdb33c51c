// kvtier_bench_attention: how close decode attention gets to the memory bandwidth it could
// use, measured in one run: on the CPU (the default, below) or, with --device=cuda:N, on a GPU
// (attention_cuda_bench.h: device copy bandwidth and the kernels' effective bandwidth).
//
// On the CPU:
// (a) Memory read bandwidth: a streaming read of a buffer far larger than the last-level cache,
//     on one thread and on all threads.
// (b) Decode attention over paged bf16 K/V with Llama-3-8B shapes (32 query heads, 8 KV heads,
//     head_dim 128, block 16, blocks shuffled), batch 1, 8, 32 x context 1k..32k where memory
//     allows. Effective bandwidth = K+V bytes read / time.
// NOTE: on shared machines the memory bandwidth left to us drifts by tens of percent within a
// minute, so each case alternates attention runs with passes of (a) on the same threads, and
// its ratio is median attention bandwidth / median read bandwidth over those same moments.
// Per thread count it also prints attention over K/V that stays in the caches: the kernel's
// compute ceiling, which bounds how much of the memory time compute can hide under.
// The last line is one JSON object for batch 8, context 16k, all threads.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "cache/kv/cpu_kv_pool.h"
#include "cache/kv/thread_pool.h"
#include "proto/wire/command_line.h"
#include "shard/pool_device.h"
#include "tests/bench/decode_bench_support.h"
#if KVTIER_BENCH_CUDA
#include "tests/bench/attention_cuda_bench.h"
#endif

ABSL_FLAG(std::string, device, "cpu", "cpu, or cuda:N to measure CUDA device N");
ABSL_FLAG(int, threads, 0, "Threads for the 'all threads' runs; 0 = one per hardware thread");
ABSL_FLAG(double, max_pool_gib, 8.0, "Largest K/V pool to allocate, GiB; bigger cases are skipped");
ABSL_FLAG(double, read_buffer_gib, 1.0, "Buffer size for the memory read bandwidth test, GiB");
ABSL_FLAG(double, min_seconds, 1.0, "Minimum time spent timing each case");

namespace kvtier::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Median seconds of `run`, after a warm-up, over at least `min_seconds` and 5 runs.
template <typename Run>
double MedianSeconds(Run run, double min_seconds) {
  run();
  std::vector<double> times;
  const Clock::time_point start = Clock::now();
  while (times.size() < 5 || (times.size() < 10000 && Seconds(start) < min_seconds)) {
    const Clock::time_point t0 = Clock::now();
    run();
    times.push_back(Seconds(t0));
  }
  return Median(std::move(times));
}

// Runs `a` and `b` alternately, after one warm-up run each, for at least `min_seconds` and at
// least 5 times each; returns the median seconds of each.
template <typename RunA, typename RunB>
std::pair<double, double> InterleavedMedianSeconds(RunA a, RunB b, double min_seconds) {
  a();
  b();
  std::vector<double> a_times, b_times;
  const Clock::time_point start = Clock::now();
  while (a_times.size() < 5 || (a_times.size() < 500 && Seconds(start) < min_seconds)) {
    Clock::time_point t0 = Clock::now();
    a();
    a_times.push_back(Seconds(t0));
    t0 = Clock::now();
    b();
    b_times.push_back(Seconds(t0));
  }
  return {Median(a_times), Median(b_times)};
}

// Reads every 8 bytes of [begin, end) with four independent sums; returns their total so the
// reads cannot be optimized away.
uint64_t ReadStream(const uint64_t* begin, const uint64_t* end) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (const uint64_t* p = begin; p + 4 <= end; p += 4) {
    s0 += p[0];
    s1 += p[1];
    s2 += p[2];
    s3 += p[3];
  }
  return s0 + s1 + s2 + s3;
}

// Streams a buffer far larger than the last-level cache on every thread of a pool.
class MemoryReader {
 public:
  MemoryReader(int64_t bytes, ThreadPool& threads)
      : buffer_(bytes / 8), threads_(threads), sums_(threads.num_threads()) {
    std::iota(buffer_.begin(), buffer_.end(), 0);
  }

  int64_t bytes() const { return per_thread() * threads_.num_threads() * 8; }

  void Read() {
    threads_.ParallelFor(threads_.num_threads(), [&](int64_t c) {
      sums_[c] +=
          ReadStream(buffer_.data() + c * per_thread(), buffer_.data() + (c + 1) * per_thread());
    });
  }

 private:
  int64_t per_thread() const {
    return static_cast<int64_t>(buffer_.size()) / threads_.num_threads();
  }

  std::vector<uint64_t> buffer_;
  ThreadPool& threads_;
  std::vector<uint64_t> sums_;  // keeps the reads observable
};

// One pool holding every case's blocks, filled with random bf16 K/V once.
std::unique_ptr<KvPool> MakeFilledPool(int num_blocks, ThreadPool* threads) {
  const KvPoolShape shape{/*num_layers=*/1, kKvHeads,   kHeadDim,
                          kBlockSize,       num_blocks, kDType};
  absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCpuKvPool(shape, {threads, BestCpuIsa()});
  if (!pool.ok()) {
    std::fprintf(stderr, "%s\n", pool.status().ToString().c_str());
    std::exit(1);
  }
  if (absl::Status status = FillWithRandomKv(**pool); !status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    std::exit(1);
  }
  return *std::move(pool);
}

struct CaseResult {
  double ms;
  double gbps;
  double read_gbps;  // memory read bandwidth measured alongside
};

// One decode step for `batch` sequences of `context` tokens over shuffled blocks of a pool.
class DecodeStep {
 public:
  DecodeStep(const KvPool& pool, const std::vector<int32_t>& shuffled_blocks, int batch,
             int context)
      : pool_(pool),
        bytes_(static_cast<double>(batch) * context * kTokenKvBytes),
        layouts_(DecodeLayouts(shuffled_blocks, batch, context)) {
    params_.num_q_heads = kQueryHeads;
    q_.resize(int64_t{batch} * kQueryHeads * kHeadDim * 2);
    for (size_t i = 0; i < q_.size() / 2; ++i) {
      StoreFromFloat(kDType, (i % 7) * 0.1f, q_.data(), i);
    }
    out_.resize(q_.size());
  }

  double bytes() const { return bytes_; }  // K+V bytes one step reads

  void Run() {
    absl::Status status = pool_.Attend(0, layouts_, params_, q_, absl::MakeSpan(out_));
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      std::exit(1);
    }
  }

 private:
  const KvPool& pool_;
  const double bytes_;
  std::vector<SequenceLayout> layouts_;
  AttentionParams params_;
  std::string q_;
  std::string out_;
};

// A decode step interleaved with memory read passes on the same threads.
CaseResult RunDecode(const KvPool& pool, const std::vector<int32_t>& shuffled_blocks, int batch,
                     int context, MemoryReader& reader) {
  DecodeStep step(pool, shuffled_blocks, batch, context);
  const auto [attend_seconds, read_seconds] = InterleavedMedianSeconds(
      [&] { step.Run(); }, [&] { reader.Read(); }, absl::GetFlag(FLAGS_min_seconds));
  return {attend_seconds * 1e3, step.bytes() / attend_seconds / 1e9,
          static_cast<double>(reader.bytes()) / read_seconds / 1e9};
}

// The kernel's compute ceiling: a step whose K/V (2 MiB) stays in the caches between runs.
double CacheResidentGbps(const KvPool& pool, const std::vector<int32_t>& shuffled_blocks) {
  DecodeStep step(pool, shuffled_blocks, /*batch=*/1, /*context=*/512);
  return step.bytes() / MedianSeconds([&] { step.Run(); }, absl::GetFlag(FLAGS_min_seconds)) / 1e9;
}

int Main() {
  const int all = absl::GetFlag(FLAGS_threads) > 0
                      ? absl::GetFlag(FLAGS_threads)
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool one_thread(1);
  ThreadPool all_threads(all);

  const int64_t read_bytes =
      static_cast<int64_t>(absl::GetFlag(FLAGS_read_buffer_gib) * (int64_t{1} << 30));
  MemoryReader read_one(read_bytes, one_thread);
  MemoryReader read_all(read_bytes, all_threads);
  const auto [one_seconds, all_seconds] = InterleavedMedianSeconds(
      [&] { read_one.Read(); }, [&] { read_all.Read(); }, absl::GetFlag(FLAGS_min_seconds));
  std::printf("memory read bandwidth (%.1f GiB buffer): 1 thread %.2f GB/s, %d threads %.2f GB/s\n",
              absl::GetFlag(FLAGS_read_buffer_gib), read_one.bytes() / one_seconds / 1e9, all,
              read_all.bytes() / all_seconds / 1e9);

  const std::vector<int> batches = {1, 8, 32};
  const std::vector<int> contexts = {1024, 4096, 16384, 32768};
  const int64_t max_pool_bytes =
      static_cast<int64_t>(absl::GetFlag(FLAGS_max_pool_gib) * (int64_t{1} << 30));
  const int64_t pool_tokens = PoolTokensFor(batches, contexts, max_pool_bytes);
  const int num_blocks = static_cast<int>(pool_tokens / kBlockSize);
  std::printf(
      "decode attention: bf16 K/V, %d query heads, %d KV heads, head_dim %d, block %d, "
      "pool %.2f GiB\n",
      kQueryHeads, kKvHeads, kHeadDim, kBlockSize,
      static_cast<double>(pool_tokens * kTokenKvBytes) / (1 << 30));
  // Attend runs on the pool's thread pool; one pool per thread count, same blocks and data.
  std::unique_ptr<KvPool> pool_one = MakeFilledPool(num_blocks, &one_thread);
  std::vector<int32_t> shuffled(num_blocks);
  std::iota(shuffled.begin(), shuffled.end(), 0);
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(2));

  std::printf("%6s %7s %8s %10s %10s %10s %7s\n", "batch", "context", "threads", "ms", "GB/s",
              "read GB/s", "ratio");
  CaseResult headline{0, 0, 0};
  for (int threads : {1, all}) {
    std::unique_ptr<KvPool> pool_all;
    const KvPool* pool = pool_one.get();
    if (threads != 1) {
      pool_one.reset();
      pool_all = MakeFilledPool(num_blocks, &all_threads);
      pool = pool_all.get();
    }
    MemoryReader& reader = threads == 1 ? read_one : read_all;
    std::printf("%6s %7s %8d   cache-resident K/V (batch 1, context 512): %.2f GB/s\n", "", "",
                threads, CacheResidentGbps(*pool, shuffled));
    for (int batch : batches) {
      for (int context : contexts) {
        if (int64_t{batch} * context > pool_tokens) {
          std::printf("%6d %7d %8d   skipped: needs more than --max_pool_gib\n", batch, context,
                      threads);
          continue;
        }
        const CaseResult result = RunDecode(*pool, shuffled, batch, context, reader);
        std::printf("%6d %7d %8d %10.3f %10.2f %10.2f %7.2f\n", batch, context, threads, result.ms,
                    result.gbps, result.read_gbps, result.gbps / result.read_gbps);
        if (threads == all && batch == 8 && context == 16384) headline = result;
      }
    }
  }
  std::printf(
      "{\"bench\":\"attention_cpu\",\"threads\":%d,\"batch\":8,\"ctx\":16384,"
      "\"memory_read_gbps\":%.2f,\"attention_gbps\":%.2f,\"ratio\":%.3f}\n",
      all, headline.read_gbps, headline.gbps, headline.gbps / headline.read_gbps);
  return 0;
}

}  // namespace
}  // namespace kvtier::bench

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(
      argc, argv,
      "Measures memory bandwidth and paged decode attention bandwidth, on the CPU or a GPU.\n"
      "Usage: kvtier_bench_attention [--device=cpu|cuda:N] [--threads=N] [--max_pool_gib=G]");
  const absl::StatusOr<kvtier::PoolDevice> device =
      kvtier::ParsePoolDevice("--device", absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::fprintf(stderr, "kvtier_bench_attention: %s\n",
                 std::string(device.status().message()).c_str());
    return 2;
  }
  if (device->kind == kvtier::PoolDevice::Kind::kCpu) return kvtier::bench::Main();
#if KVTIER_BENCH_CUDA
  return kvtier::bench::RunCudaAttentionBench(
      {.device = device->cuda_ordinal, .max_pool_gib = absl::GetFlag(FLAGS_max_pool_gib)});
#else
  std::fprintf(stderr,
               "kvtier_bench_attention: --device=%s: this build has no CUDA backend "
               "(KVTIER_CUDA=OFF, or no CUDA toolkit at configure time)\n",
               device->Name().c_str());
  return 2;
#endif
}
