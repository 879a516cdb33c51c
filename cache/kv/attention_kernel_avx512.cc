// AVX-512 tile kernels (AVX-512F + AVX512-BF16), for head_dim a multiple of 32. For bf16, Q.K
// uses vdpbf16ps: bf16 products are exact in fp32 and the sums are fp32, so it is as accurate
// as converting K and using FMAs, with half the instructions. The softmax and P.V are fp32.
// Compiled for these extensions by the pragma below only (see attention_kernel_avx2.cc), and
// chosen at run time only on CPUs that have them.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cache/kv/attention_tile.h"
#include "cache/kv/cpu_isa.h"
#include "cache/kv/dtype.h"

namespace kvtier::attention_internal {
namespace {

// NOTE: clang ignores GCC's target pragma; its own attribute pragma does the same.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bf16,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bf16,avx2,fma,f16c")
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

// Sixteen fp32 or fp16 elements (bf16 goes by Load32 or vdpbf16ps).
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

  // bf16 keeps its queries in bf16 for vdpbf16ps: the fp32 values came from bf16, so the
  // conversion back is exact.
  void PrepareQueries(const float* q, float* prepared) const {
    if constexpr (kDType == DType::kBF16) {
      for (int i = 0; i < kTileRows * d_; i += 32) {
        const __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(q + i + 16),
                                                  _mm512_loadu_ps(q + i));
        _mm512_storeu_si512(reinterpret_cast<uint16_t*>(prepared) + i, (__m512i)pair);
      }
    } else {
      std::copy(q, q + kTileRows * d_, prepared);
    }
  }

  // Four tokens at a time: 16 accumulators (4 tokens x 4 rows), each K chunk loaded once.
  void Scores(const float* q, const Elem* k, int n, const Elem* k_ahead, float* scores) const {
    const int d = d_;
    const __m512 scale = _mm512_set1_ps(scale_);
    const uint16_t* q_bf16 = reinterpret_cast<const uint16_t*>(q);
    PrefetchSpreader prefetch(k_ahead, int64_t{n} * d * sizeof(Elem), (n + 3) / 4);
    for (int t = 0; t < n; t += 4) {
      prefetch.Step();
      // Past the last token, repeat it; only the real tokens' scores are stored.
      const Elem* keys[4];
      for (int i = 0; i < 4; ++i) keys[i] = k + int64_t{t + (t + i < n ? i : 0)} * d;
      __m512 acc[16];
      for (__m512& a : acc) a = _mm512_setzero_ps();
      if constexpr (kDType == DType::kBF16) {
        for (int j = 0; j < d; j += 32) {
          __m512bh query[kTileRows];
          for (int r = 0; r < kTileRows; ++r) {
            query[r] = (__m512bh)_mm512_loadu_si512(q_bf16 + r * d + j);
          }
          for (int i = 0; i < 4; ++i) {
            const __m512bh key = (__m512bh)_mm512_loadu_si512(keys[i] + j);
            for (int r = 0; r < kTileRows; ++r) {
              acc[i * kTileRows + r] = _mm512_dpbf16_ps(acc[i * kTileRows + r], query[r], key);
            }
          }
        }
      } else {
        for (int j = 0; j < d; j += 16) {
          __m512 query[kTileRows];
          for (int r = 0; r < kTileRows; ++r) query[r] = _mm512_loadu_ps(q + r * d + j);
          for (int i = 0; i < 4; ++i) {
            const __m512 key = Load16<kDType>(keys[i] + j);
            for (int r = 0; r < kTileRows; ++r) {
              acc[i * kTileRows + r] = _mm512_fmadd_ps(query[r], key, acc[i * kTileRows + r]);
            }
          }
        }
      }
      const __m512 sums = _mm512_mul_ps(HorizontalSums16(acc), scale);
      const int tokens = n - t < 4 ? n - t : 4;
      _mm512_mask_storeu_ps(scores + t * kTileRows,
                            static_cast<__mmask16>((1u << (tokens * kTileRows)) - 1), sums);
    }
  }

  void Exp2(float* x, const float* shift, int n, float* sum) const {
    const __m512 shift16 = _mm512_broadcast_f32x4(_mm_loadu_ps(shift));
    __m512 total = _mm512_setzero_ps();
    const int count = n * kTileRows;
    for (int i = 0; i < count; i += 16) {
      const __mmask16 lanes =
          count - i >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << (count - i)) - 1);
      const __m512 e = _mm512_maskz_mov_ps(
          lanes, Exp2NonPositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + i), shift16)));
      _mm512_mask_storeu_ps(x + i, lanes, e);
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
    PrefetchSpreader prefetch(v_ahead, int64_t{n} * d * sizeof(Elem), d / 32);
    for (int j = 0; j < d; j += 32) {
      prefetch.Step();
      __m512 a[8];
      for (int r = 0; r < kTileRows; ++r) {
        a[2 * r] = _mm512_loadu_ps(acc + r * d + j);
        a[2 * r + 1] = _mm512_loadu_ps(acc + r * d + j + 16);
      }
      for (int t = 0; t < n; ++t) {
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
      const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
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
