#include "tests/bench/attention_cuda_bench.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/kv/cuda/cuda_attention_batch.h"
#include "cache/kv/cuda/cuda_buffers.h"
#include "cache/kv/cuda/cuda_kv_pool.h"
#include "cache/kv/cuda/cuda_status.h"
#include "cache/kv/cuda/kv_copy_cuda.h"
#include "cache/kv/cuda/paged_attention_cuda.h"
#include "tests/bench/decode_bench_support.h"

namespace kvtier::bench {
namespace {

constexpr int kWarmupRuns = 5;
// Each way of the copy: far past the 50 MiB L2 of an H100.
constexpr int64_t kCopyBytes = int64_t{1} << 30;

// Median milliseconds of `runs` launches queued by `launch` on `stream`, each between two
// events, after warm-up.
absl::StatusOr<double> MedianEventMs(const std::function<absl::Status()>& launch,
                                     cudaStream_t stream, int runs) {
  cudaEvent_t start, stop;
  KVTIER_CUDA_RETURN_IF_ERROR(cudaEventCreate(&start));
  KVTIER_CUDA_RETURN_IF_ERROR(cudaEventCreate(&stop));
  std::vector<double> ms;
  absl::Status status;
  for (int i = 0; i < kWarmupRuns + runs && status.ok(); ++i) {
    status = CudaCallStatus(cudaEventRecord(start, stream), "cudaEventRecord");
    if (status.ok()) status = launch();
    if (status.ok()) status = CudaCallStatus(cudaEventRecord(stop, stream), "cudaEventRecord");
    if (status.ok()) status = CudaCallStatus(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float elapsed = 0;
    if (status.ok()) {
      status = CudaCallStatus(cudaEventElapsedTime(&elapsed, start, stop), "cudaEventElapsedTime");
    }
    if (i >= kWarmupRuns) ms.push_back(elapsed);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (!status.ok()) return status;
  return Median(ms);
}

struct DecodeResult {
  double kernel_ms;  // CUDA events around the kernels alone
  double gbps;       // K+V bytes / kernel time
  double attend_ms;  // KvPool::Attend, host staging of q and out included (wall clock)
};

// Decode for `batch` sequences of `context` tokens over shuffled blocks of the pool.
absl::StatusOr<DecodeResult> RunDecode(KvPool& pool, const CudaPoolMemory& memory,
                                       const std::vector<int32_t>& shuffled, int batch, int context,
                                       int num_sms, cudaStream_t stream, int runs) {
  const std::vector<SequenceLayout> layouts = DecodeLayouts(shuffled, batch, context);
  AttentionParams params;
  params.num_q_heads = kQueryHeads;
  std::string q(int64_t{batch} * kQueryHeads * kHeadDim * 2, '\0');
  for (size_t i = 0; i < q.size() / 2; ++i) StoreFromFloat(kDType, (i % 7) * 0.1f, q.data(), i);
  std::string out(q.size(), '\0');

  // Kernel time: device-resident q and out, the batch prepared once.
  CudaAttentionBatch batch_plan;
  absl::StatusOr<cuda::PagedAttentionLaunch> launch =
      batch_plan.Prepare(layouts, params, pool.shape(), num_sms, stream);
  if (!launch.ok()) return launch.status();
  CudaBuffer tensors(CudaBuffer::Memory::kDevice);
  if (absl::Status status = tensors.Reserve(2 * q.size()); !status.ok()) return status;
  KVTIER_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(tensors.data(), q.data(), q.size(), cudaMemcpyHostToDevice, stream));
  launch->k = memory.slab;
  launch->v = memory.slab + memory.layer_bytes;
  launch->q = tensors.data();
  launch->out = tensors.data() + q.size();
  absl::StatusOr<double> kernel_ms = MedianEventMs(
      [&] {
        return CudaCallStatus(cuda::LaunchPagedAttention(*launch, stream), "LaunchPagedAttention");
      },
      stream, runs);
  if (!kernel_ms.ok()) return kernel_ms.status();

  // The pool's own call, as a shard makes it.
  std::vector<double> attend_ms;
  for (int i = 0; i < kWarmupRuns + runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status status = pool.Attend(0, layouts, params, q, absl::MakeSpan(out));
        !status.ok()) {
      return status;
    }
    const std::chrono::duration<double, std::milli> elapsed =
        std::chrono::steady_clock::now() - start;
    if (i >= kWarmupRuns) attend_ms.push_back(elapsed.count());
  }
  const double bytes = static_cast<double>(batch) * context * kTokenKvBytes;
  return DecodeResult{*kernel_ms, bytes / (*kernel_ms * 1e-3) / 1e9, Median(attend_ms)};
}

absl::Status Run(const CudaBenchOptions& options) {
  KVTIER_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  cudaDeviceProp properties;
  KVTIER_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&properties, options.device));
  cudaStream_t stream;
  KVTIER_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  // (a) Device copy bandwidth: bytes read plus bytes written.
  CudaBuffer copy_buffers(CudaBuffer::Memory::kDevice);
  if (absl::Status status = copy_buffers.Reserve(2 * kCopyBytes); !status.ok()) return status;
  absl::StatusOr<double> copy_ms = MedianEventMs(
      [&] {
        return CudaCallStatus(
            cuda::LaunchDeviceCopy(copy_buffers.data(), copy_buffers.data() + kCopyBytes,
                                   kCopyBytes, stream),
            "LaunchDeviceCopy");
      },
      stream, options.runs);
  if (!copy_ms.ok()) return copy_ms.status();
  const double copy_gbps = 2.0 * kCopyBytes / (*copy_ms * 1e-3) / 1e9;
  std::printf("device: %s (cuda:%d, %d SMs, %.1f GiB)\n", properties.name, options.device,
              properties.multiProcessorCount,
              static_cast<double>(properties.totalGlobalMem) / (1 << 30));
  std::printf("device copy bandwidth (%.0f MiB each way, read + write): %.1f GB/s\n",
              static_cast<double>(kCopyBytes) / (1 << 20), copy_gbps);

  // (b) Decode attention, Llama-3-8B shapes.
  const std::vector<int> batches = {1, 16, 64};
  const std::vector<int> contexts = {1024, 4096, 16384, 32768};
  const int64_t pool_tokens = PoolTokensFor(
      batches, contexts, static_cast<int64_t>(options.max_pool_gib * (int64_t{1} << 30)));
  const int num_blocks = static_cast<int>(pool_tokens / kBlockSize);
  absl::StatusOr<std::unique_ptr<KvPool>> pool =
      CreateCudaKvPool({/*num_layers=*/1, kKvHeads, kHeadDim, kBlockSize, num_blocks, kDType},
                       {.device = options.device});
  if (!pool.ok()) return pool.status();
  if (absl::Status status = FillWithRandomKv(**pool); !status.ok()) return status;
  absl::StatusOr<CudaPoolMemory> memory = CudaPoolMemoryOf(**pool);
  if (!memory.ok()) return memory.status();
  std::vector<int32_t> shuffled(num_blocks);
  std::iota(shuffled.begin(), shuffled.end(), 0);
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(2));
  std::printf(
      "decode attention: bf16 K/V, %d query heads, %d KV heads, head_dim %d, block %d, pool "
      "%.2f GiB, median of %d runs (CUDA events around the kernels; Attend adds host staging)\n",
      kQueryHeads, kKvHeads, kHeadDim, kBlockSize,
      static_cast<double>(pool_tokens * kTokenKvBytes) / (1 << 30), options.runs);
  std::printf("%6s %7s %11s %10s %9s %11s\n", "batch", "context", "kernel ms", "GB/s", "of copy",
              "Attend ms");
  DecodeResult headline{0, 0, 0};
  double worst_target_ratio = 0;  // the lowest ratio at batch >= 16, context >= 4k
  for (int batch : batches) {
    for (int context : contexts) {
      if (int64_t{batch} * context > pool_tokens) {
        std::printf("%6d %7d   skipped: needs more than --max_pool_gib\n", batch, context);
        continue;
      }
      absl::StatusOr<DecodeResult> result =
          RunDecode(**pool, *memory, shuffled, batch, context, properties.multiProcessorCount,
                    stream, options.runs);
      if (!result.ok()) return result.status();
      const double ratio = result->gbps / copy_gbps;
      std::printf("%6d %7d %11.4f %10.1f %9.3f %11.3f\n", batch, context, result->kernel_ms,
                  result->gbps, ratio, result->attend_ms);
      if (batch >= 16 && context >= 4096) {
        worst_target_ratio = worst_target_ratio == 0 ? ratio : std::min(worst_target_ratio, ratio);
      }
      if (batch == 16 && context == 16384) headline = *result;
    }
  }
  std::printf(
      "{\"bench\":\"attention_cuda\",\"device\":\"%s\",\"batch\":16,\"ctx\":16384,"
      "\"copy_gbps\":%.1f,\"attention_gbps\":%.1f,\"ratio\":%.3f,"
      "\"min_ratio_batch_ge16_ctx_ge4k\":%.3f}\n",
      properties.name, copy_gbps, headline.gbps, headline.gbps / copy_gbps, worst_target_ratio);
  cudaStreamDestroy(stream);
  return absl::OkStatus();
}

}  // namespace

int RunCudaAttentionBench(const CudaBenchOptions& options) {
  if (absl::Status status = Run(options); !status.ok()) {
    std::fprintf(stderr, "kvtier_bench_attention: cuda:%d: %s\n", options.device,
                 status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace kvtier::bench
