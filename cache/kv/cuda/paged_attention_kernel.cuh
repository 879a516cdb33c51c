// The CUDA paged-attention kernels: PagedAttentionKernel runs one unit of an AttentionPlan
// (one tile of query rows of one sequence, one KV head, one split of its context) in one
// thread block; MergeAttentionStatesKernel combines a split sequence's units exactly.
//
// Inside a unit, each of the kWarps warps takes every kWarps-th block of the split. A warp
// reads kTokensPerStep tokens at a time: kLanesPerToken lanes share one token's K (and V) row,
// each lane holding kElems consecutive elements, loaded 16 bytes at a time. Every lane keeps
// the tile's kRows queries (pre-scaled by scale * log2 e) in registers, so a K/V row, once
// loaded, serves every query head of the GQA group and every query token of the tile: K/V
// cross the memory bus once per group, which makes decode a pure bandwidth problem.
// kUnroll steps' K and V loads are issued before any is used, to keep enough bytes in flight,
// and each lane fetches one of the warp's next 32 block ids, handed round by shuffles.
//
// Scores are reduced across a token's lanes with shuffles; softmax runs online per row in the
// log2 domain (running max m, sum l, unnormalized accumulator). At the end the lane groups of
// a warp merge by shuffles and the warps through shared memory, rescaling to the common max
// exactly as the split merge does. An unsplit unit writes its rows' outputs, rounded to the
// dtype; a split one writes its fp32 state to partial_acc and partial_stats.
//
// Tensor layouts: see paged_attention_cuda.h. Included by one .cu per dtype, which instantiates
// the head dims and tile heights.
#ifndef KVTIER_CACHE_KV_CUDA_PAGED_ATTENTION_KERNEL_CUH_
#define KVTIER_CACHE_KV_CUDA_PAGED_ATTENTION_KERNEL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cache/kv/cuda/paged_attention_cuda.h"

namespace kvtier::cuda {
namespace paged_attention_internal {

inline constexpr int kWarps = 4;
inline constexpr int kThreads = 32 * kWarps;
inline constexpr int kMergeThreads = 256;
inline constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float NegInf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// kElems consecutive elements of T, moved with 16-byte loads (kElems * sizeof(T) is 16 or 32).
template <typename T, int kElems>
struct Fragment {
  static constexpr int kLoads = kElems * static_cast<int>(sizeof(T)) / 16;
  static_assert(kLoads >= 1 && kElems * sizeof(T) % 16 == 0, "fragments are whole uint4s");

  uint4 raw[kLoads];

  __device__ __forceinline__ void Load(const T* __restrict__ p) {
    const uint4* src = reinterpret_cast<const uint4*>(p);
#pragma unroll
    for (int i = 0; i < kLoads; ++i) raw[i] = src[i];
  }
  __device__ __forceinline__ void Zero() {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) raw[i] = make_uint4(0, 0, 0, 0);
  }
  __device__ __forceinline__ float operator[](int i) const {
    return ToFloat(reinterpret_cast<const T*>(raw)[i]);
  }
};

template <typename T, int kHeadDim, int kRows>
struct Traits {
  static constexpr int kRowBytes = kHeadDim * static_cast<int>(sizeof(T));
  static constexpr int kLanesPerToken = kRowBytes / 16 < 32 ? kRowBytes / 16 : 32;
  static constexpr int kElems = kHeadDim / kLanesPerToken;
  static constexpr int kTokensPerStep = 32 / kLanesPerToken;
  // Taller tiles hold more query registers: fewer loads in flight keep them from spilling.
  static constexpr int kUnroll = kRows <= 4 ? 4 : 2;
  static constexpr int kTokensPerIteration = kTokensPerStep * kUnroll;
};

// The last sequence whose first unit (or, for merges, first merge) is at or before `index`:
// the one that owns it, as AttentionPlan::SequenceOfUnit and SequenceOfMerge say.
template <bool kMerge>
__device__ __forceinline__ int FindSequence(const DeviceSequence* sequences, int count,
                                            int64_t index) {
  int low = 0;
  int high = count;
  while (high - low > 1) {
    const int mid = (low + high) / 2;
    const int64_t first = kMerge ? sequences[mid].first_merge : sequences[mid].first_unit;
    if (first <= index) {
      low = mid;
    } else {
      high = mid;
    }
  }
  return low;
}

// Element offset in q and out of row `row` (token-major: token * G + head in group) of a
// sequence's KV head.
__device__ __forceinline__ int64_t RowOffset(const PagedAttentionLaunch& a,
                                             const DeviceSequence& seq, int kv_head, int row) {
  const int64_t token = seq.first_query + row / a.group;
  return (token * a.num_q_heads + int64_t{kv_head} * a.group + row % a.group) * a.head_dim;
}

// Folds state (m_other, l_other) into (m, l), returning the weights of the old and the other
// accumulators. A side that has seen no position (max -inf) weighs 0.
__device__ __forceinline__ void MergeState(float& m, float& l, float m_other, float l_other,
                                           float& weight, float& weight_other) {
  const float m_new = fmaxf(m, m_other);
  weight = m_new == NegInf() ? 0.0f : exp2f(m - m_new);
  weight_other = m_new == NegInf() ? 0.0f : exp2f(m_other - m_new);
  l = l * weight + l_other * weight_other;
  m = m_new;
}

template <typename T, int kHeadDim, int kRows>
__global__ void __launch_bounds__(kThreads) PagedAttentionKernel(const PagedAttentionLaunch a) {
  using Tr = Traits<T, kHeadDim, kRows>;
  constexpr int kLanes = Tr::kLanesPerToken;
  constexpr int kElems = Tr::kElems;
  constexpr int kUnroll = Tr::kUnroll;
  __shared__ float warp_acc[kWarps][kRows][kHeadDim];
  __shared__ float warp_max[kWarps][kRows];
  __shared__ float warp_sum[kWarps][kRows];

  const int64_t unit = blockIdx.x;
  const DeviceSequence seq = a.sequences[FindSequence<false>(a.sequences, a.num_sequences, unit)];
  const int64_t local = unit - seq.first_unit;
  const int split = static_cast<int>(local % seq.splits);
  const int tile = static_cast<int>(local / seq.splits % seq.tiles);
  const int kv_head = static_cast<int>(local / seq.splits / seq.tiles);

  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int part = lane % kLanes;        // which kElems of the head this lane holds
  const int step_token = lane / kLanes;  // which token of a step this lane reads

  // Rows past the real ones repeat the last real row; their results are never written.
  float q[kRows][kElems];
  int limit[kRows];  // row r sees positions < limit[r]
  int max_limit = 0;
  const T* q_all = static_cast<const T*>(a.q);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = min(tile * kRows + r, seq.rows - 1);
    Fragment<T, kElems> fragment;
    fragment.Load(q_all + RowOffset(a, seq, kv_head, row) + part * kElems);
#pragma unroll
    for (int e = 0; e < kElems; ++e) q[r][e] = fragment[e] * a.scale_log2;
    limit[r] = seq.context_len - seq.num_queries + row / a.group + 1;
    max_limit = max(max_limit, limit[r]);
  }
  const int begin = static_cast<int>(min(int64_t{split} * a.split_tokens, int64_t{max_limit}));
  const int end = static_cast<int>(min(int64_t{begin} + a.split_tokens, int64_t{max_limit}));

  float m[kRows];
  float l[kRows];
  float acc[kRows][kElems];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = NegInf();
    l[r] = 0.0f;
#pragma unroll
    for (int e = 0; e < kElems; ++e) acc[r][e] = 0.0f;
  }

  const int64_t head_block_elems = int64_t{a.block_size} * kHeadDim;
  const T* k_layer = static_cast<const T*>(a.k);
  const T* v_layer = static_cast<const T*>(a.v);
  const int32_t* table = a.block_tables + seq.block_table_offset;
  // begin is a whole number of blocks whenever begin < end.
  const int first_block = begin / a.block_size;
  const int end_block = begin < end ? (end + a.block_size - 1) / a.block_size : first_block;
  // Lane i holds the block id of this warp's iteration 32 * (j / 32) + i: one table load per
  // 32 blocks instead of a dependent load ahead of each.
  int32_t block_ids = 0;
  for (int b = first_block + warp, j = 0; b < end_block; b += kWarps, ++j) {
    if (j % 32 == 0) {
      const int lane_block = b + lane * kWarps;
      block_ids = lane_block < end_block ? table[lane_block] : 0;
    }
    const int64_t block = __shfl_sync(kFullMask, block_ids, j % 32);
    const int64_t head_block = block * a.num_kv_heads + kv_head;
    const T* k_block = k_layer + head_block * head_block_elems + part * kElems;
    const T* v_block = v_layer + head_block * head_block_elems + part * kElems;
    const int block_pos = b * a.block_size;
    const int tokens = min(a.block_size, end - block_pos);
    for (int o = 0; o < tokens; o += Tr::kTokensPerIteration) {
      Fragment<T, kElems> k_rows[kUnroll];
      Fragment<T, kElems> v_rows[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int t = o + u * Tr::kTokensPerStep + step_token;
        if (t < tokens) {
          k_rows[u].Load(k_block + int64_t{t} * kHeadDim);
          v_rows[u].Load(v_block + int64_t{t} * kHeadDim);
        } else {
          k_rows[u].Zero();
          v_rows[u].Zero();
        }
      }
      float score[kUnroll][kRows];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          float dot = 0.0f;
#pragma unroll
          for (int e = 0; e < kElems; ++e) dot = fmaf(q[r][e], k_rows[u][e], dot);
          score[u][r] = dot;
        }
      }
#pragma unroll
      for (int offset = kLanes / 2; offset > 0; offset /= 2) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            score[u][r] += __shfl_xor_sync(kFullMask, score[u][r], offset);
          }
        }
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float step_max = NegInf();
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int t = o + u * Tr::kTokensPerStep + step_token;
          if (t >= tokens || block_pos + t >= limit[r]) score[u][r] = NegInf();
          step_max = fmaxf(step_max, score[u][r]);
        }
        const float m_new = fmaxf(m[r], step_max);
        if (m_new == NegInf()) continue;  // nothing seen yet by this row
        if (m_new != m[r]) {
          const float alpha = exp2f(m[r] - m_new);
          l[r] *= alpha;
#pragma unroll
          for (int e = 0; e < kElems; ++e) acc[r][e] *= alpha;
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const float p = exp2f(score[u][r] - m_new);
          l[r] += p;
#pragma unroll
          for (int e = 0; e < kElems; ++e) acc[r][e] = fmaf(p, v_rows[u][e], acc[r][e]);
        }
        m[r] = m_new;
      }
    }
  }

  // Lane groups of a warp saw different tokens: merge them into group 0.
#pragma unroll
  for (int offset = kLanes; offset < 32; offset *= 2) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float m_other = __shfl_xor_sync(kFullMask, m[r], offset);
      const float l_other = __shfl_xor_sync(kFullMask, l[r], offset);
      float weight, weight_other;
      MergeState(m[r], l[r], m_other, l_other, weight, weight_other);
#pragma unroll
      for (int e = 0; e < kElems; ++e) {
        const float other = __shfl_xor_sync(kFullMask, acc[r][e], offset);
        acc[r][e] = acc[r][e] * weight + other * weight_other;
      }
    }
  }
  if (step_token == 0) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
#pragma unroll
      for (int e = 0; e < kElems; ++e) warp_acc[warp][r][part * kElems + e] = acc[r][e];
      if (part == 0) {
        warp_max[warp][r] = m[r];
        warp_sum[warp][r] = l[r];
      }
    }
  }
  __syncthreads();

  T* out = static_cast<T*>(a.out);
  for (int i = threadIdx.x; i < kRows * kHeadDim; i += kThreads) {
    const int r = i / kHeadDim;
    const int d = i % kHeadDim;
    const int row = tile * kRows + r;
    if (row >= seq.rows) break;  // rows are in order: the rest are padding too
    float max = warp_max[0][r];
    float sum = warp_sum[0][r];
    float value = warp_acc[0][r][d];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) {
      float weight, weight_other;
      MergeState(max, sum, warp_max[w][r], warp_sum[w][r], weight, weight_other);
      value = value * weight + warp_acc[w][r][d] * weight_other;
    }
    if (seq.splits == 1) {
      out[RowOffset(a, seq, kv_head, row) + d] = FromFloat<T>(sum > 0.0f ? value / sum : 0.0f);
    } else {
      const int64_t state = unit * kRows + r;
      a.partial_acc[state * kHeadDim + d] = value;
      if (d == 0) {
        a.partial_stats[2 * state] = max;
        a.partial_stats[2 * state + 1] = sum;
      }
    }
  }
}

// One thread block per merge: (sequence, KV head, tile) of a split sequence. Thread i handles
// element i % head_dim of row i / head_dim, over all the splits.
template <typename T>
__global__ void __launch_bounds__(kMergeThreads)
    MergeAttentionStatesKernel(const PagedAttentionLaunch a) {
  const int64_t merge = blockIdx.x;
  const DeviceSequence seq = a.sequences[FindSequence<true>(a.sequences, a.num_sequences, merge)];
  const int64_t local = merge - seq.first_merge;
  const int kv_head = static_cast<int>(local / seq.tiles);
  const int tile = static_cast<int>(local % seq.tiles);
  const int64_t first_unit = seq.first_unit + local * seq.splits;
  T* out = static_cast<T*>(a.out);
  for (int i = threadIdx.x; i < a.tile_rows * a.head_dim; i += kMergeThreads) {
    const int r = i / a.head_dim;
    const int d = i % a.head_dim;
    const int row = tile * a.tile_rows + r;
    if (row >= seq.rows) break;
    float max = NegInf();
    float sum = 0.0f;
    float value = 0.0f;
    for (int s = 0; s < seq.splits; ++s) {
      const int64_t state = (first_unit + s) * a.tile_rows + r;
      float weight, weight_other;
      MergeState(max, sum, a.partial_stats[2 * state], a.partial_stats[2 * state + 1], weight,
                 weight_other);
      value = value * weight + a.partial_acc[state * a.head_dim + d] * weight_other;
    }
    out[RowOffset(a, seq, kv_head, row) + d] = FromFloat<T>(sum > 0.0f ? value / sum : 0.0f);
  }
}

template <typename T, int kHeadDim, int kRows>
cudaError_t Launch(const PagedAttentionLaunch& a, cudaStream_t stream) {
  PagedAttentionKernel<T, kHeadDim, kRows>
      <<<static_cast<unsigned>(a.num_units), kThreads, 0, stream>>>(a);
  if (cudaError_t error = cudaGetLastError(); error != cudaSuccess) return error;
  if (a.num_merges == 0) return cudaSuccess;
  MergeAttentionStatesKernel<T>
      <<<static_cast<unsigned>(a.num_merges), kMergeThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

template <typename T, int kHeadDim>
cudaError_t LaunchForHeadDim(const PagedAttentionLaunch& a, cudaStream_t stream) {
  switch (a.tile_rows) {
    case 1:
      return Launch<T, kHeadDim, 1>(a, stream);
    case 2:
      return Launch<T, kHeadDim, 2>(a, stream);
    case 4:
      return Launch<T, kHeadDim, 4>(a, stream);
    case 8:
      return Launch<T, kHeadDim, 8>(a, stream);
  }
  return cudaErrorInvalidValue;
}

// The launcher of one dtype: dispatches the head dim and tile height to an instantiation.
template <typename T>
cudaError_t LaunchForDType(const PagedAttentionLaunch& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64:
      return LaunchForHeadDim<T, 64>(a, stream);
    case 128:
      return LaunchForHeadDim<T, 128>(a, stream);
    case 256:
      return LaunchForHeadDim<T, 256>(a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace paged_attention_internal
}  // namespace kvtier::cuda

#endif  // KVTIER_CACHE_KV_CUDA_PAGED_ATTENTION_KERNEL_CUH_
