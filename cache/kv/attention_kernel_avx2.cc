// AVX2 + FMA + F16C tile kernels, for head_dim a multiple of 16. Compiled for those extensions
// by the pragma below (not by flags for the whole file, so that no inline function from a
// shared header is emitted with instructions a CPU without AVX2 would fault on), and chosen at
// run time only on CPUs that have them.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cache/kv/attention_tile.h"
#include "cache/kv/cpu_isa.h"
#include "cache/kv/dtype.h"

namespace kvtier::attention_internal {
namespace {

// NOTE: clang ignores GCC's target pragma; its own attribute pragma does the same.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

static_assert(kTileRows == 4, "the AVX2 kernels hold 4 rows in registers");

template <DType kDType>
using ElemOf = std::conditional_t<kDType == DType::kF32, float, uint16_t>;

// Sixteen elements as two vectors: bf16 in even-odd order (attention_tile.h), by one load and a
// shift and a mask; fp16 and fp32 in natural order.
template <DType kDType>
inline void Load16(const ElemOf<kDType>* p, __m256& first, __m256& second) {
  if constexpr (kDType == DType::kF32) {
    first = _mm256_loadu_ps(p);
    second = _mm256_loadu_ps(p + 8);
  } else if constexpr (kDType == DType::kF16) {
    first = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    second = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  } else {
    const __m256i pairs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    first = _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16));
    second = _mm256_castsi256_ps(
        _mm256_and_si256(pairs, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
}

// The 8 horizontal sums of v[0..7], in order, as one vector.
inline __m256 HorizontalSums(const __m256 v[8]) {
  const __m256 s01 = _mm256_hadd_ps(v[0], v[1]);
  const __m256 s23 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 s45 = _mm256_hadd_ps(v[4], v[5]);
  const __m256 s67 = _mm256_hadd_ps(v[6], v[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23);
  const __m256 s4567 = _mm256_hadd_ps(s45, s67);
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                       _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

// 2^x for x <= 0 (Cephes exp2f polynomial on the fraction, relative error ~1e-7), and 0 for
// x < -126, which covers -inf (masked positions).
inline __m256 Exp2NonPositive(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-126.0f), _CMP_LT_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(-126.0f));
  const __m256 whole = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, whole);  // [-0.5, 0.5]
  __m256 poly = _mm256_set1_ps(1.535336188319500e-4f);
  poly = _mm256_fmadd_ps(poly, f, _mm256_set1_ps(1.339887440266574e-3f));
  poly = _mm256_fmadd_ps(poly, f, _mm256_set1_ps(9.618437357674640e-3f));
  poly = _mm256_fmadd_ps(poly, f, _mm256_set1_ps(5.550332471162809e-2f));
  poly = _mm256_fmadd_ps(poly, f, _mm256_set1_ps(2.402264791363012e-1f));
  poly = _mm256_fmadd_ps(poly, f, _mm256_set1_ps(6.931472028550421e-1f));
  poly = _mm256_fmadd_ps(poly, f, _mm256_set1_ps(1.0f));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(whole), _mm256_set1_epi32(127)), 23);
  const __m256 result = _mm256_mul_ps(poly, _mm256_castsi256_ps(exponent));
  return _mm256_andnot_ps(underflow, result);
}

template <DType kDType>
class Avx2Ops {
 public:
  using Elem = ElemOf<kDType>;

  Avx2Ops(int d, float scale) : d_(d), scale_(scale) {}

  // bf16 queries go to even-odd order, to match the keys as Load16 widens them.
  void PrepareQueries(const float* q, float* prepared) const {
    if constexpr (kDType == DType::kBF16) {
      ToEvenOddOrder(q, kTileRows * d_, 16, prepared);
    } else {
      std::copy(q, q + kTileRows * d_, prepared);
    }
  }

  // Two tokens at a time: 8 accumulators (4 rows x 2 tokens), each K chunk loaded once.
  void Scores(const float* q, const Elem* k, int n, const int* visible, const Elem* k_ahead,
              float* scores, float* block_max) const {
    const int d = d_;
    const __m256 scale = _mm256_set1_ps(scale_);
    const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    // Lane 4 * i + r holds token t + i of row r.
    const __m128i visible4 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(visible));
    const __m256i visible8 = _mm256_set_m128i(visible4, visible4);
    const __m256i lane_token = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m256 running_max = neg_inf;
    // A step of the j loop reads 2 tokens x 16 dims.
    PrefetchSpreader prefetch(k_ahead, int64_t{n} * d * sizeof(Elem), 2 * 16 * sizeof(Elem));
    for (int t = 0; t < n; t += 2) {
      const Elem* k0 = k + int64_t{t} * d;
      // An odd last token pairs with itself; its second scores are masked.
      const Elem* k1 = t + 1 < n ? k0 + d : k0;
      __m256 acc[8];
      for (__m256& a : acc) a = _mm256_setzero_ps();
      for (int j = 0; j < d; j += 16) {
        prefetch.Step();
        __m256 key0[2], key1[2];
        Load16<kDType>(k0 + j, key0[0], key0[1]);
        Load16<kDType>(k1 + j, key1[0], key1[1]);
        for (int half = 0; half < 2; ++half) {
          for (int r = 0; r < kTileRows; ++r) {
            const __m256 x = _mm256_loadu_ps(q + r * d + j + 8 * half);
            acc[r] = _mm256_fmadd_ps(x, key0[half], acc[r]);
            acc[kTileRows + r] = _mm256_fmadd_ps(x, key1[half], acc[kTileRows + r]);
          }
        }
      }
      const __m256 seen = _mm256_castsi256_ps(
          _mm256_cmpgt_epi32(visible8, _mm256_add_epi32(lane_token, _mm256_set1_epi32(t))));
      const __m256 sums =
          _mm256_blendv_ps(neg_inf, _mm256_mul_ps(HorizontalSums(acc), scale), seen);
      _mm256_storeu_ps(scores + t * kTileRows, sums);
      running_max = _mm256_max_ps(running_max, sums);
    }
    _mm_storeu_ps(block_max, _mm_max_ps(_mm256_castps256_ps128(running_max),
                                        _mm256_extractf128_ps(running_max, 1)));
  }

  // Whole vectors of 2 tokens: the scores past n are -inf, so they add 0.
  void Exp2(float* x, const float* shift, int n, float* sum) const {
    const __m128 shift4 = _mm_loadu_ps(shift);
    const __m256 shift8 = _mm256_set_m128(shift4, shift4);
    __m256 total = _mm256_setzero_ps();
    for (int i = 0; i < n * kTileRows; i += 8) {
      const __m256 e = Exp2NonPositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift8));
      _mm256_storeu_ps(x + i, e);
      total = _mm256_add_ps(total, e);
    }
    const __m128 rows = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps(total, 1));
    _mm_storeu_ps(sum, _mm_add_ps(_mm_loadu_ps(sum), rows));
  }

  // Sixteen output dims of all 4 rows in registers while the tokens stream by; bf16 keeps
  // them in even-odd order until FinishValues.
  void AccumulateValues(const float* p, const Elem* v, int n, const Elem* v_ahead,
                        float* acc) const {
    const int d = d_;
    // A step reads 16 dims of one token.
    PrefetchSpreader prefetch(v_ahead, int64_t{n} * d * sizeof(Elem), 16 * sizeof(Elem));
    for (int j = 0; j < d; j += 16) {
      __m256 a[8];
      for (int r = 0; r < kTileRows; ++r) {
        a[2 * r] = _mm256_loadu_ps(acc + r * d + j);
        a[2 * r + 1] = _mm256_loadu_ps(acc + r * d + j + 8);
      }
      for (int t = 0; t < n; ++t) {
        prefetch.Step();
        __m256 v0, v1;
        Load16<kDType>(v + int64_t{t} * d + j, v0, v1);
        const float* pt = p + t * kTileRows;
        for (int r = 0; r < kTileRows; ++r) {
          const __m256 weight = _mm256_broadcast_ss(pt + r);
          a[2 * r] = _mm256_fmadd_ps(weight, v0, a[2 * r]);
          a[2 * r + 1] = _mm256_fmadd_ps(weight, v1, a[2 * r + 1]);
        }
      }
      for (int r = 0; r < kTileRows; ++r) {
        _mm256_storeu_ps(acc + r * d + j, a[2 * r]);
        _mm256_storeu_ps(acc + r * d + j + 8, a[2 * r + 1]);
      }
    }
  }

  // bf16: each 16 dims from even-odd back to natural order.
  void FinishValues(float* acc) const {
    if constexpr (kDType == DType::kBF16) {
      for (int i = 0; i < kTileRows * d_; i += 16) {
        const __m256 even = _mm256_loadu_ps(acc + i);
        const __m256 odd = _mm256_loadu_ps(acc + i + 8);
        const __m256 low = _mm256_unpacklo_ps(even, odd);   // 0 1 2 3 | 8 9 10 11
        const __m256 high = _mm256_unpackhi_ps(even, odd);  // 4 5 6 7 | 12 13 14 15
        _mm256_storeu_ps(acc + i, _mm256_permute2f128_ps(low, high, 0x20));
        _mm256_storeu_ps(acc + i + 8, _mm256_permute2f128_ps(low, high, 0x31));
      }
    }
  }

 private:
  const int d_;
  const float scale_;
};

}  // namespace

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

TileKernel Avx2TileKernel(DType dtype, int head_dim) {
  if (head_dim % 16 != 0 || !CpuSupports(CpuIsa::kAvx2)) return nullptr;
  return TileKernelFor<Avx2Ops>(dtype);
}

}  // namespace kvtier::attention_internal
