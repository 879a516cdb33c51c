#include "tests/bench/memory_reader.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cache/kv/cpu_isa.h"

namespace kvtier::bench {
namespace {

constexpr int64_t kHugePage = int64_t{2} << 20;

uint64_t Sum(__m128i s) {
  return static_cast<uint64_t>(_mm_cvtsi128_si64(s) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s)));
}

// Each reads [begin, end) (64-byte aligned, a multiple of 256 bytes) with four independent
// accumulators and returns a value that depends on every byte.
uint64_t Read128(const char* begin, const char* end) {
  __m128i s0 = _mm_setzero_si128(), s1 = s0, s2 = s0, s3 = s0;
  for (const char* p = begin; p < end; p += 256) {
    for (int i = 0; i < 256; i += 64) {
      s0 = _mm_add_epi64(s0, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i)));
      s1 = _mm_add_epi64(s1, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 16)));
      s2 = _mm_add_epi64(s2, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 32)));
      s3 = _mm_add_epi64(s3, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 48)));
    }
  }
  return Sum(_mm_add_epi64(_mm_add_epi64(s0, s1), _mm_add_epi64(s2, s3)));
}

__attribute__((target("avx2"))) uint64_t Read256(const char* begin, const char* end) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (const char* p = begin; p < end; p += 256) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 64)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 96)));
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 128)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 160)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 192)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 224)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  return Sum(_mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
}

__attribute__((target("avx512f"))) uint64_t Read512(const char* begin, const char* end) {
  __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
  for (const char* p = begin; p < end; p += 256) {
    s0 = _mm512_add_epi64(s0, _mm512_load_si512(p));
    s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + 64));
    s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + 128));
    s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + 192));
  }
  const __m512i s = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
  uint64_t lanes[8];
  _mm512_storeu_si512(lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

uint64_t ReadWithWidth(int bits, const char* begin, const char* end) {
  switch (bits) {
    case 512:
      return Read512(begin, end);
    case 256:
      return Read256(begin, end);
    default:
      return Read128(begin, end);
  }
}

}  // namespace

std::vector<int> ReadWidths() {
  std::vector<int> widths = {128};
  if (CpuSupports(CpuIsa::kAvx2)) widths.push_back(256);
  if (__builtin_cpu_supports("avx512f")) widths.push_back(512);
  return widths;
}

MemoryReader::MemoryReader(int64_t bytes, ThreadPool& threads)
    : threads_(threads),
      per_thread_(std::max<int64_t>(1, bytes / threads.num_threads() / kHugePage) * kHugePage),
      buffer_(static_cast<char*>(std::aligned_alloc(kHugePage, this->bytes()))),
      width_(ReadWidths().back()),
      sums_(threads.num_threads()) {
  if (buffer_ == nullptr) {
    std::fprintf(stderr, "cannot allocate %lld bytes to read\n",
                 static_cast<long long>(this->bytes()));
    std::exit(1);
  }
  madvise(buffer_, this->bytes(), MADV_HUGEPAGE);
  // Each thread first touches its own share.
  threads_.ParallelFor(threads_.num_threads(), [&](int64_t c) {
    std::memset(buffer_ + c * per_thread_, static_cast<int>(c + 1), per_thread_);
  });
}

MemoryReader::~MemoryReader() { std::free(buffer_); }

double MemoryReader::huge_page_fraction() const {
  std::FILE* smaps = std::fopen("/proc/self/smaps", "r");
  if (smaps == nullptr) return -1;
  const uintptr_t start = reinterpret_cast<uintptr_t>(buffer_);
  char line[512];
  bool inside = false;
  double fraction = -1;
  while (std::fgets(line, sizeof(line), smaps) != nullptr) {
    unsigned long low, high;
    if (std::sscanf(line, "%lx-%lx ", &low, &high) == 2) {  // a mapping's first line
      inside = low <= start && start < high;
      continue;
    }
    unsigned long kib;
    if (inside && std::sscanf(line, "AnonHugePages: %lu kB", &kib) == 1) {
      fraction = static_cast<double>(kib) * 1024 / bytes();
      break;
    }
  }
  std::fclose(smaps);
  return fraction;
}

void MemoryReader::Read() {
  threads_.ParallelFor(threads_.num_threads(), [&](int64_t c) {
    const char* begin = buffer_ + c * per_thread_;
    sums_[c] += ReadWithWidth(width_, begin, begin + per_thread_);
  });
}

}  // namespace kvtier::bench
