// The CUDA half of kvtier_bench_attention (built with the CUDA backend only): device copy
// bandwidth and paged decode attention's effective bandwidth on one GPU, timed with CUDA
// events, printed as a table and a last JSON line "bench":"attention_cuda".
#ifndef KVTIER_TESTS_BENCH_ATTENTION_CUDA_BENCH_H_
#define KVTIER_TESTS_BENCH_ATTENTION_CUDA_BENCH_H_

namespace kvtier::bench {

struct CudaBenchOptions {
  int device = 0;
  double max_pool_gib = 8.0;  // bigger cases are skipped
  int runs = 50;              // timed runs per case, after warm-up
};

// Returns the process exit code: 0, or 1 after printing why the device could not be used.
int RunCudaAttentionBench(const CudaBenchOptions& options);

}  // namespace kvtier::bench

#endif  // KVTIER_TESTS_BENCH_ATTENTION_CUDA_BENCH_H_
