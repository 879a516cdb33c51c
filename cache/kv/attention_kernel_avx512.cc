// AVX-512F tile kernels, for head_dim a multiple of 32. bf16 is widened to fp32 (even-odd
// order, attention_tile.h) and multiplied with FMAs, in Q.K as in P.V.
// NOTE: not vdpbf16ps (AVX512-BF16) for Q.K, although it takes half the instructions: on the
// Sapphire Rapids VMs this was tuned on it retires 0.45 a cycle against 1.86 for vfmadd231ps,
// and the Q.K loop ran 41 cycles a token and KV head with it against 30 with FMAs.
// Compiled for these extensions by the pragma below only (see attention_kernel_avx2.cc), and
// chosen at run time only on CPUs that have them.
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
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
#endif
// NOTE: GCC 12's own AVX-512 intrinsics trip -Wuninitialized through their _mm512_undefined_*
// placeholders once inlined (GCC bug 105593, fixed in GCC 13); nothing here is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

static_assert(kTileRows == 4, "the AVX-512 kernels hold 4 rows x 4 tokens in registers");

template <DType kDType>
using ElemOf = std::conditional_t<kDType == DType::kF32, float, uint16_t>;

// Sixteen fp32 or fp16 elements (bf16 goes by Load32).
template <DType kDType>
inline __m512 Load16(const ElemOf<kDType>* p) {
  static_assert(kDType != DType::kBF16);
  if constexpr (kDType == DType::kF32) {
    return _mm512_loadu_ps(p);
  } else {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
}

// Thirty-two elements as two vectors: bf16 in even-odd order (attention_tile.h), by one load
// and a shift and a mask; fp16 and fp32 in natural order.
template <DType kDType>
inline void Load32(const ElemOf<kDType>* p, __m512& first, __m512& second) {
  if constexpr (kDType == DType::kBF16) {
    const __m512i pairs = _mm512_loadu_si512(p);
    first = _mm512_castsi512_ps(_mm512_slli_epi32(pairs, 16));
    second = _mm512_castsi512_ps(
        _mm512_and_si512(pairs, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  } else {
    first = Load16<kDType>(p);
    second = Load16<kDType>(p + 16);
  }
}

// [a0 + a1, a2 + a3, b0 + b1, b2 + b3] of the 128-bit lanes of a and b.
inline __m512 FoldLanes(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
}

// The 16 horizontal sums of v[0..15], in order: a transposing tree of 30 shuffles and 15 adds.
inline __m512 HorizontalSums16(const __m512 v[16]) {
  // Pairs: in each 128-bit lane, [a0+a2, b0+b2, a1+a3, b1+b3].
  __m512 pairs[8];
  for (int i = 0; i < 8; ++i) {
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  // Quads: in each 128-bit lane, that lane's sums of v[4m .. 4m + 3].
  __m512 quads[4];
  for (int m = 0; m < 4; ++m) {
    const __m512d low = _mm512_castps_pd(pairs[2 * m]);
    const __m512d high = _mm512_castps_pd(pairs[2 * m + 1]);
    quads[m] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(low, high)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(low, high)));
  }
  // Then across the 128-bit lanes: quad m's four lanes summed into lane m.
  return FoldLanes(FoldLanes(quads[0], quads[1]), FoldLanes(quads[2], quads[3]));
}

// 2^x for x <= 0 (Cephes exp2f polynomial, relative error ~1e-7), 0 for x < -126 and -inf.
inline __m512 Exp2NonPositive(__m512 x) {
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_LT_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-126.0f));
  const __m512 whole = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, whole);  // [-0.5, 0.5]
  __m512 poly = _mm512_set1_ps(1.535336188319500e-4f);
  poly = _mm512_fmadd_ps(poly, f, _mm512_set1_ps(1.339887440266574e-3f));
  poly = _mm512_fmadd_ps(poly, f, _mm512_set1_ps(9.618437357674640e-3f));
  poly = _mm512_fmadd_ps(poly, f, _mm512_set1_ps(5.550332471162809e-2f));
  poly = _mm512_fmadd_ps(poly, f, _mm512_set1_ps(2.402264791363012e-1f));
  poly = _mm512_fmadd_ps(poly, f, _mm512_set1_ps(6.931472028550421e-1f));
  poly = _mm512_fmadd_ps(poly, f, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), _mm512_scalef_ps(poly, whole));
}

template <DType kDType>
class Avx512Ops {
 public:
  using Elem = ElemOf<kDType>;

  Avx512Ops(int d, float scale) : d_(d), scale_(scale) {}

  // bf16 queries go to even-odd order, to match the keys as Load32 widens them.
  void PrepareQueries(const float* q, float* prepared) const {
    if constexpr (kDType == DType::kBF16) {
      ToEvenOddOrder(q, kTileRows * d_, 32, prepared);
    } else {
      std::copy(q, q + kTileRows * d_, prepared);
    }
  }

  // Four tokens at a time: 16 accumulators (4 tokens x 4 rows), each K chunk loaded once.
  void Scores(const float* q, const Elem* k, int n, const int* visible, const Elem* k_ahead,
              float* scores, float* block_max) const {
    const int d = d_;
    const __m512 scale = _mm512_set1_ps(scale_);
    const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    // Lane 4 * i + r holds token t + i of row r.
    const __m512i visible16 =
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(visible)));
    const __m512i lane_token = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512 running_max = neg_inf;
    // A step of the j loop reads 4 tokens x 32 dims.
    PrefetchSpreader prefetch(k_ahead, int64_t{n} * d * sizeof(Elem), 4 * 32 * sizeof(Elem));
    for (int t = 0; t < n; t += 4) {
      // Past the last token, repeat it; its scores are masked.
      const Elem* keys[4];
      for (int i = 0; i < 4; ++i) keys[i] = k + int64_t{t + (t + i < n ? i : 0)} * d;
      __m512 acc[16];
      for (__m512& a : acc) a = _mm512_setzero_ps();
      for (int j = 0; j < d; j += 32) {
        prefetch.Step();
        __m512 query[2 * kTileRows];
        for (int r = 0; r < kTileRows; ++r) {
          query[2 * r] = _mm512_loadu_ps(q + r * d + j);
          query[2 * r + 1] = _mm512_loadu_ps(q + r * d + j + 16);
        }
        for (int i = 0; i < 4; ++i) {
          __m512 key0, key1;
          Load32<kDType>(keys[i] + j, key0, key1);
          for (int r = 0; r < kTileRows; ++r) {
            __m512& a = acc[i * kTileRows + r];
            a = _mm512_fmadd_ps(query[2 * r + 1], key1, _mm512_fmadd_ps(query[2 * r], key0, a));
          }
        }
      }
      const __mmask16 seen =
          _mm512_cmplt_epi32_mask(_mm512_add_epi32(lane_token, _mm512_set1_epi32(t)), visible16);
      const __m512 sums = _mm512_mask_mul_ps(neg_inf, seen, HorizontalSums16(acc), scale);
      _mm512_storeu_ps(scores + t * kTileRows, sums);
      running_max = _mm512_max_ps(running_max, sums);
    }
    running_max = _mm512_max_ps(running_max, _mm512_shuffle_f32x4(running_max, running_max, 0x4e));
    running_max = _mm512_max_ps(running_max, _mm512_shuffle_f32x4(running_max, running_max, 0xb1));
    _mm_storeu_ps(block_max, _mm512_castps512_ps128(running_max));
  }

  // Whole vectors of 4 tokens: the scores past n are -inf, so they add 0.
  void Exp2(float* x, const float* shift, int n, float* sum) const {
    const __m512 shift16 = _mm512_broadcast_f32x4(_mm_loadu_ps(shift));
    __m512 total = _mm512_setzero_ps();
    for (int i = 0; i < n * kTileRows; i += 16) {
      const __m512 e = Exp2NonPositive(_mm512_sub_ps(_mm512_loadu_ps(x + i), shift16));
      _mm512_storeu_ps(x + i, e);
      total = _mm512_add_ps(total, e);
    }
    const __m256 half =
        _mm256_add_ps(_mm512_castps512_ps256(total),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(total), 1)));
    const __m128 rows = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    _mm_storeu_ps(sum, _mm_add_ps(_mm_loadu_ps(sum), rows));
  }

  // Thirty-two output dims of all 4 rows in registers while the tokens stream by; bf16 keeps
  // them in even-odd order until FinishValues.
  void AccumulateValues(const float* p, const Elem* v, int n, const Elem* v_ahead,
                        float* acc) const {
    const int d = d_;
    // A step reads 32 dims of one token.
    PrefetchSpreader prefetch(v_ahead, int64_t{n} * d * sizeof(Elem), 32 * sizeof(Elem));
    for (int j = 0; j < d; j += 32) {
      __m512 a[8];
      for (int r = 0; r < kTileRows; ++r) {
        a[2 * r] = _mm512_loadu_ps(acc + r * d + j);
        a[2 * r + 1] = _mm512_loadu_ps(acc + r * d + j + 16);
      }
      for (int t = 0; t < n; ++t) {
        prefetch.Step();
        __m512 v0, v1;
        Load32<kDType>(v + int64_t{t} * d + j, v0, v1);
        const float* pt = p + t * kTileRows;
        for (int r = 0; r < kTileRows; ++r) {
          const __m512 weight = _mm512_set1_ps(pt[r]);
          a[2 * r] = _mm512_fmadd_ps(weight, v0, a[2 * r]);
          a[2 * r + 1] = _mm512_fmadd_ps(weight, v1, a[2 * r + 1]);
        }
      }
      for (int r = 0; r < kTileRows; ++r) {
        _mm512_storeu_ps(acc + r * d + j, a[2 * r]);
        _mm512_storeu_ps(acc + r * d + j + 16, a[2 * r + 1]);
      }
    }
  }

  // bf16: each 32 dims from even-odd back to natural order.
  void FinishValues(float* acc) const {
    if constexpr (kDType == DType::kBF16) {
      const __m512i first =
          _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
      const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
      for (int i = 0; i < kTileRows * d_; i += 32) {
        const __m512 even = _mm512_loadu_ps(acc + i);
        const __m512 odd = _mm512_loadu_ps(acc + i + 16);
        _mm512_storeu_ps(acc + i, _mm512_permutex2var_ps(even, first, odd));
        _mm512_storeu_ps(acc + i + 16, _mm512_permutex2var_ps(even, second, odd));
      }
    }
  }

 private:
  const int d_;
  const float scale_;
};

#pragma GCC diagnostic pop
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

}  // namespace

TileKernel Avx512TileKernel(DType dtype, int head_dim) {
  if (head_dim % 32 != 0 || !CpuSupports(CpuIsa::kAvx512)) return nullptr;
  return TileKernelFor<Avx512Ops>(dtype);
}

}  // namespace kvtier::attention_internal
