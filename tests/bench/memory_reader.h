// MemoryReader: the read-bandwidth reference of kvtier_bench_attention. It streams a buffer far
// larger than the last-level cache, in huge pages (asked for by madvise before the first
// touch; huge_page_fraction says how much the kernel granted), with vector loads of one width
// (SSE2, AVX2 or AVX-512: ReadWidths lists those this CPU runs), each thread of a pool reading
// its own contiguous share. Not thread-safe: one Read at a time.
#ifndef KVTIER_TESTS_BENCH_MEMORY_READER_H_
#define KVTIER_TESTS_BENCH_MEMORY_READER_H_

#include <cstdint>
#include <vector>

#include "cache/kv/thread_pool.h"

namespace kvtier::bench {

// The load widths this CPU runs, in bits: 128, 256 and 512 where available.
std::vector<int> ReadWidths();

class MemoryReader {
 public:
  // `bytes` rounded down to whole 2 MiB pages per thread.
  MemoryReader(int64_t bytes, ThreadPool& threads);
  ~MemoryReader();

  MemoryReader(const MemoryReader&) = delete;
  MemoryReader& operator=(const MemoryReader&) = delete;

  int64_t bytes() const { return per_thread_ * threads_.num_threads(); }
  // The share of the buffer the kernel backs with huge pages, 0 to 1 (-1 when unknown).
  double huge_page_fraction() const;

  // The load width Read uses, one of ReadWidths(); the widest at first.
  void set_width(int bits) { width_ = bits; }
  int width() const { return width_; }

  // One pass over the whole buffer, every thread at once.
  void Read();

 private:
  ThreadPool& threads_;
  int64_t per_thread_;
  char* buffer_;
  int width_;
  std::vector<uint64_t> sums_;  // keeps the loads observable
};

}  // namespace kvtier::bench

#endif  // KVTIER_TESTS_BENCH_MEMORY_READER_H_
