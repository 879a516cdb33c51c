// kvtier_bench_attention: how close decode attention gets to the memory bandwidth it could
// use, measured in one run: on the CPU (the default, below) or, with --device=cuda:N, on a GPU
// (attention_cuda_bench.h: device copy bandwidth and the kernels' effective bandwidth).
//
// On the CPU, in one run, with the kernel --isa picks (the best this CPU runs by default):
// (a) The read reference: the best memory read bandwidth this machine's loads reach, on one
//     thread and on all: a huge-page buffer far larger than the last-level cache, streamed by
//     each thread's share with every vector width the CPU has (SSE2, AVX2, AVX-512); the best
//     width is the reference (memory_reader.h).
// (b) The compute ceiling: decode attention over K/V that stays in L2 (a batch of sequences
//     sharing the same few blocks, big enough that waking the threads is noise).
// (c) Decode attention over paged bf16 K/V with Llama-3-8B shapes (32 query heads, 8 KV heads,
//     head_dim 128, block 16, blocks shuffled), batch 1, 8, 32 x context 1k..32k where memory
//     allows. Effective bandwidth = K+V bytes read / time.
// NOTE: on shared machines the memory bandwidth left to us drifts by tens of percent within a
// minute, so each case alternates attention runs with passes of (a) on the same threads, and
// its ratio is the median over those pairs of attention bandwidth / read bandwidth; "spread"
// is the interquartile range of those per-pair ratios.
// The last line is one JSON object for batch 8, context 16k, all threads (when --batches and
// --contexts include it).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "cache/kv/cpu_kv_pool.h"
#include "cache/kv/thread_pool.h"
#include "proto/wire/command_line.h"
#include "shard/pool_device.h"
#include "tests/bench/decode_bench_support.h"
#include "tests/bench/memory_reader.h"
#if KVTIER_BENCH_CUDA
#include "tests/bench/attention_cuda_bench.h"
#endif

ABSL_FLAG(std::string, device, "cpu", "cpu, or cuda:N to measure CUDA device N");
ABSL_FLAG(int, threads, 0, "Threads for the 'all threads' runs; 0 = one per hardware thread");
ABSL_FLAG(double, max_pool_gib, 8.0, "Largest K/V pool to allocate, GiB; bigger cases are skipped");
ABSL_FLAG(double, read_buffer_gib, 2.0, "Buffer size for the memory read reference, GiB");
ABSL_FLAG(double, min_seconds, 2.0, "Minimum time spent timing each case");
ABSL_FLAG(int, min_samples, 15, "Minimum timed runs (pairs, where interleaved) per case");
ABSL_FLAG(std::string, isa, "",
          "Attention kernel ISA ceiling: portable, avx2 or avx512; empty = the best this CPU runs");
ABSL_FLAG(std::vector<std::string>, batches, std::vector<std::string>({"1", "8", "32"}),
          "Batch sizes (sequences per step) to measure, comma-separated");
ABSL_FLAG(std::vector<std::string>, contexts,
          std::vector<std::string>({"1024", "4096", "16384", "32768"}),
          "Context lengths (tokens per sequence) to measure, comma-separated");
ABSL_FLAG(int, resident_context, 256,
          "Tokens of shared context in the compute-ceiling case, 4 KiB of K+V each: keep it "
          "within L2 (256: 1 MiB)");

namespace kvtier::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The q-quantile of `values`, 0 <= q <= 1.
double Quantile(std::vector<double> values, double q) {
  const size_t index = static_cast<size_t>(q * (values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + index, values.end());
  return values[index];
}

// Seconds of `run`, after a warm-up, over at least `min_seconds` and --min_samples runs.
template <typename Run>
std::vector<double> SampleSeconds(Run run, double min_seconds) {
  run();
  std::vector<double> times;
  const Clock::time_point start = Clock::now();
  const size_t min_samples = absl::GetFlag(FLAGS_min_samples);
  while (times.size() < min_samples || (times.size() < 10000 && Seconds(start) < min_seconds)) {
    const Clock::time_point t0 = Clock::now();
    run();
    times.push_back(Seconds(t0));
  }
  return times;
}

// Runs `a` and `b` alternately, after one warm-up run each, for at least `min_seconds` and at
// least --min_samples times each; returns the seconds of each run, pair by pair.
template <typename RunA, typename RunB>
std::pair<std::vector<double>, std::vector<double>> InterleavedSeconds(RunA a, RunB b,
                                                                       double min_seconds) {
  a();
  b();
  std::vector<double> a_times, b_times;
  const Clock::time_point start = Clock::now();
  const size_t min_samples = absl::GetFlag(FLAGS_min_samples);
  while (a_times.size() < min_samples || (a_times.size() < 1000 && Seconds(start) < min_seconds)) {
    Clock::time_point t0 = Clock::now();
    a();
    a_times.push_back(Seconds(t0));
    t0 = Clock::now();
    b();
    b_times.push_back(Seconds(t0));
  }
  return {std::move(a_times), std::move(b_times)};
}

// `values` as positive ints; exits with status 2 naming `flag` otherwise.
std::vector<int> PositiveInts(const char* flag, const std::vector<std::string>& values) {
  std::vector<int> ints;
  for (const std::string& value : values) {
    int parsed = 0;
    if (!absl::SimpleAtoi(value, &parsed) || parsed <= 0) {
      std::fprintf(stderr, "kvtier_bench_attention: %s: expected positive integers, got \"%s\"\n",
                   flag, value.c_str());
      std::exit(2);
    }
    ints.push_back(parsed);
  }
  return ints;
}

// Chooses the reader's widest-reading load width: each width this CPU has, interleaved pass
// by pass, median GB/s each. Prints them; leaves the best set.
void ChooseReadWidth(MemoryReader& reader, int threads) {
  const std::vector<int> widths = ReadWidths();
  std::vector<std::vector<double>> seconds(widths.size());
  for (int width : widths) {  // warm-up
    reader.set_width(width);
    reader.Read();
  }
  const size_t samples = std::max(5, absl::GetFlag(FLAGS_min_samples) / 2);
  for (size_t i = 0; i < samples; ++i) {
    for (size_t w = 0; w < widths.size(); ++w) {
      reader.set_width(widths[w]);
      const Clock::time_point t0 = Clock::now();
      reader.Read();
      seconds[w].push_back(Seconds(t0));
    }
  }
  std::printf(
      "memory read, %.1f GiB (%.0f%% in huge pages), %d thread%s:", reader.bytes() / 1073741824.0,
      100 * reader.huge_page_fraction(), threads, threads == 1 ? "" : "s");
  int best = widths.front();
  double best_gbps = 0;
  for (size_t w = 0; w < widths.size(); ++w) {
    const double gbps = reader.bytes() / Median(seconds[w]) / 1e9;
    std::printf(" %d-bit %.2f GB/s", widths[w], gbps);
    if (gbps > best_gbps) {
      best = widths[w];
      best_gbps = gbps;
    }
  }
  std::printf("; reference: %d-bit\n", best);
  reader.set_width(best);
}

// One pool holding every case's blocks, filled with random bf16 K/V once.
std::unique_ptr<KvPool> MakeFilledPool(int num_blocks, ThreadPool* threads, CpuIsa isa) {
  const KvPoolShape shape{/*num_layers=*/1, kKvHeads,   kHeadDim,
                          kBlockSize,       num_blocks, kDType};
  absl::StatusOr<std::unique_ptr<KvPool>> pool = CreateCpuKvPool(shape, {threads, isa});
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
  double ms;         // median
  double gbps;       // at the median time
  double read_gbps;  // median memory read bandwidth measured alongside
  double ratio;      // median of the pairs' gbps / read gbps
  double spread;     // interquartile range of those ratios
};

// One decode step for `batch` sequences of `context` tokens each over `layouts`.
class DecodeStep {
 public:
  DecodeStep(const KvPool& pool, std::vector<SequenceLayout> layouts, int batch, int context)
      : pool_(pool),
        bytes_(static_cast<double>(batch) * context * kTokenKvBytes),
        layouts_(std::move(layouts)) {
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

// A decode step over consecutive runs of shuffled blocks, interleaved with memory read passes
// on the same threads.
CaseResult RunDecode(const KvPool& pool, const std::vector<int32_t>& shuffled_blocks, int batch,
                     int context, MemoryReader& reader) {
  DecodeStep step(pool, DecodeLayouts(shuffled_blocks, batch, context), batch, context);
  const auto [attend, read] = InterleavedSeconds([&] { step.Run(); }, [&] { reader.Read(); },
                                                 absl::GetFlag(FLAGS_min_seconds));
  std::vector<double> ratios;
  for (size_t i = 0; i < attend.size(); ++i) {
    ratios.push_back(step.bytes() / attend[i] / (static_cast<double>(reader.bytes()) / read[i]));
  }
  const double attend_seconds = Median(attend);
  return {attend_seconds * 1e3, step.bytes() / attend_seconds / 1e9,
          static_cast<double>(reader.bytes()) / Median(read) / 1e9, Median(ratios),
          Quantile(ratios, 0.75) - Quantile(ratios, 0.25)};
}

// The kernel's compute ceiling: batch 64 decoding over the same --resident_context tokens of
// blocks, K/V that stays in L2 between the units reading it.
double CacheResidentGbps(const KvPool& pool, const std::vector<int32_t>& shuffled_blocks) {
  constexpr int kBatch = 64;
  const int context = absl::GetFlag(FLAGS_resident_context);
  const absl::Span<const int32_t> blocks =
      absl::MakeConstSpan(shuffled_blocks).subspan(0, (context + kBlockSize - 1) / kBlockSize);
  DecodeStep step(pool, std::vector<SequenceLayout>(kBatch, {blocks, context, 1}), kBatch, context);
  return step.bytes() /
         Median(SampleSeconds([&] { step.Run(); }, absl::GetFlag(FLAGS_min_seconds))) / 1e9;
}

int Main() {
  const int all = absl::GetFlag(FLAGS_threads) > 0
                      ? absl::GetFlag(FLAGS_threads)
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CpuIsa isa = BestCpuIsa();
  if (!absl::GetFlag(FLAGS_isa).empty()) {
    const absl::StatusOr<CpuIsa> asked = ParseCpuIsa(absl::GetFlag(FLAGS_isa));
    if (!asked.ok()) {
      std::fprintf(stderr, "kvtier_bench_attention: --%s\n",
                   std::string(asked.status().message()).c_str());
      std::exit(2);
    }
    if (!CpuSupports(*asked)) {
      std::fprintf(stderr, "kvtier_bench_attention: --isa=%s: this CPU lacks the instructions\n",
                   std::string(CpuIsaName(*asked)).c_str());
      std::exit(2);
    }
    isa = *asked;
  }
  ThreadPool one_thread(1);
  ThreadPool all_threads(all);

  const int64_t read_bytes =
      static_cast<int64_t>(absl::GetFlag(FLAGS_read_buffer_gib) * (int64_t{1} << 30));
  MemoryReader read_one(read_bytes, one_thread);
  MemoryReader read_all(read_bytes, all_threads);
  ChooseReadWidth(read_one, 1);
  ChooseReadWidth(read_all, all);

  const std::vector<int> batches = PositiveInts("--batches", absl::GetFlag(FLAGS_batches));
  const std::vector<int> contexts = PositiveInts("--contexts", absl::GetFlag(FLAGS_contexts));
  const int64_t max_pool_bytes =
      static_cast<int64_t>(absl::GetFlag(FLAGS_max_pool_gib) * (int64_t{1} << 30));
  const int64_t pool_tokens = PoolTokensFor(batches, contexts, max_pool_bytes);
  const int num_blocks = static_cast<int>(pool_tokens / kBlockSize);
  std::printf(
      "decode attention, %s kernel: bf16 K/V, %d query heads, %d KV heads, head_dim %d, "
      "block %d, pool %.2f GiB\n",
      std::string(CpuIsaName(isa)).c_str(), kQueryHeads, kKvHeads, kHeadDim, kBlockSize,
      static_cast<double>(pool_tokens * kTokenKvBytes) / (1 << 30));
  // Attend runs on the pool's thread pool; one pool per thread count, same blocks and data.
  std::unique_ptr<KvPool> pool_one = MakeFilledPool(num_blocks, &one_thread, isa);
  std::vector<int32_t> shuffled(num_blocks);
  std::iota(shuffled.begin(), shuffled.end(), 0);
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(2));

  std::printf("%6s %7s %8s %10s %10s %10s %7s %7s\n", "batch", "context", "threads", "ms", "GB/s",
              "read GB/s", "ratio", "spread");
  std::optional<CaseResult> headline;
  for (int threads : {1, all}) {
    std::unique_ptr<KvPool> pool_all;
    const KvPool* pool = pool_one.get();
    if (threads != 1) {
      pool_one.reset();
      pool_all = MakeFilledPool(num_blocks, &all_threads, isa);
      pool = pool_all.get();
    }
    MemoryReader& reader = threads == 1 ? read_one : read_all;
    std::printf("%6s %7s %8d   compute ceiling, K/V in L2 (batch 64 over %d KiB): %.2f GB/s\n", "",
                "", threads,
                static_cast<int>(absl::GetFlag(FLAGS_resident_context) * kTokenKvBytes >> 10),
                CacheResidentGbps(*pool, shuffled));
    for (int batch : batches) {
      for (int context : contexts) {
        if (int64_t{batch} * context > pool_tokens) {
          std::printf("%6d %7d %8d   skipped: needs more than --max_pool_gib\n", batch, context,
                      threads);
          continue;
        }
        const CaseResult result = RunDecode(*pool, shuffled, batch, context, reader);
        std::printf("%6d %7d %8d %10.3f %10.2f %10.2f %7.2f %7.2f\n", batch, context, threads,
                    result.ms, result.gbps, result.read_gbps, result.ratio, result.spread);
        std::fflush(stdout);
        if (threads == all && batch == 8 && context == 16384) headline = result;
      }
    }
  }
  if (!headline.has_value()) {
    std::printf("no JSON line: --batches and --contexts leave out the headline, batch 8 x 16384\n");
    return 0;
  }
  std::printf(
      "{\"bench\":\"attention_cpu\",\"isa\":\"%s\",\"threads\":%d,\"batch\":8,\"ctx\":16384,"
      "\"memory_read_gbps\":%.2f,\"attention_gbps\":%.2f,\"ratio\":%.3f}\n",
      std::string(CpuIsaName(isa)).c_str(), all, headline->read_gbps, headline->gbps,
      headline->ratio);
  return 0;
}

}  // namespace
}  // namespace kvtier::bench

int main(int argc, char** argv) {
  kvtier::ParseCommandLine(
      argc, argv,
      "Measures memory bandwidth and paged decode attention bandwidth, on the CPU or a GPU.\n"
      "Usage: kvtier_bench_attention [--device=cpu|cuda:N] [--isa=avx2] [--threads=N] "
      "[--max_pool_gib=G]");
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
