// Internal to the CPU attention (attention.cc and its kernels): one unit of work, a "tile", and
// the loop that runs it.
//
// A tile is up to kTileRows query rows that read the same KV head (the heads of one GQA group,
// then the next query token's), swept over a token range of one sequence's context. Each K/V
// block of that head is loaded once per tile and used by every row: this is what turns GQA's
// group size into arithmetic per byte. State per row is the online-softmax triple in the log2
// domain (scores are scaled by scale * log2 e, so 2^x replaces e^x): running max m, running
// sum l, and the unnormalized output acc[head_dim].
//
// RunTile is a template over an `Ops` policy (portable, AVX2, AVX-512) that supplies the inner
// loops. Each kernel translation unit instantiates it with its own policy type, in an anonymous
// namespace, so instantiations compiled for different ISAs never merge at link time.
#ifndef KVTIER_CACHE_KV_ATTENTION_TILE_H_
#define KVTIER_CACHE_KV_ATTENTION_TILE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cache/kv/dtype.h"

namespace kvtier::attention_internal {

inline constexpr int kTileRows = 4;
inline constexpr int kMaxHeadDim = 512;
inline constexpr int kMaxBlockSize = 512;

struct TileTask {
  // One layer of K and V, [num_blocks][num_kv_heads][block_size][head_dim].
  const void* k_layer = nullptr;
  const void* v_layer = nullptr;
  const int32_t* block_table = nullptr;
  int kv_head = 0;
  int num_kv_heads = 0;
  int block_size = 0;
  int head_dim = 0;
  // Context positions [begin, end) to sweep.
  int begin = 0;
  int end = 0;
  // [kTileRows][head_dim] queries, the model dtype's values in fp32. Rows past the real ones
  // repeat a real row; their results are ignored.
  const float* q = nullptr;
  float scale = 0.0f;         // softmax scale times log2 e: scores are in the log2 domain
  int limit[kTileRows] = {};  // row r sees positions < limit[r]
  // Online-softmax state, in and out: acc [kTileRows][head_dim], max and sum [kTileRows].
  float* acc = nullptr;
  float* max = nullptr;
  float* sum = nullptr;
  // [kMaxBlockSize][kTileRows] floats of scratch.
  float* scores = nullptr;
};

using TileKernel = void (*)(const TileTask& task);

// The kernels for `dtype`; null when the CPU lacks the ISA or the head_dim does not fit it.
TileKernel PortableTileKernel(DType dtype);
TileKernel Avx2TileKernel(DType dtype, int head_dim);
TileKernel Avx512TileKernel(DType dtype, int head_dim);

// An Ops object is built once per tile from (q, head_dim, scale), may prepare the queries for
// its ISA, and provides, for its element type Elem:
//   Scores(k, n, scores):        scores[t][r] = scale * dot(q[r], k[t]) for t < n, r < kTileRows
//   Exp2(x, shift, n, sum):      x[t][r] = 2^(x[t][r] - shift[r]), 0 where that is < -126, and
//                                sum[r] += the new x[t][r] over t
//   AccumulateValues(p, v, n, acc): acc[r] += sum over t < n of p[t][r] * v[t]
template <typename Ops>
void RunTile(const TileTask& task) {
  using Elem = typename Ops::Elem;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const Ops ops(task.q, task.head_dim, task.scale);
  const int block_size = task.block_size;
  const int d = task.head_dim;
  const int64_t head_block_elems = int64_t{block_size} * d;
  auto head_block = [&](const void* layer, int block_index) {
    const int64_t block = task.block_table[block_index];
    return static_cast<const Elem*>(layer) +
           (block * task.num_kv_heads + task.kv_head) * head_block_elems;
  };
  const int min_limit = *std::min_element(task.limit, task.limit + kTileRows);

  for (int pos = task.begin; pos < task.end;) {
    const int block_index = pos / block_size;
    const int offset = pos % block_size;
    const int n = std::min(block_size - offset, task.end - pos);
    if (pos + n < task.end) {
      // Blocks are scattered, so hardware prefetchers stop at each block's edge.
      const int next_tokens = std::min(block_size, task.end - pos - n);
      const char* next_k = reinterpret_cast<const char*>(head_block(task.k_layer, block_index + 1));
      const char* next_v = reinterpret_cast<const char*>(head_block(task.v_layer, block_index + 1));
      const int64_t bytes = int64_t{next_tokens} * d * static_cast<int64_t>(sizeof(Elem));
      for (int64_t line = 0; line < bytes; line += 64) {
        __builtin_prefetch(next_k + line);
        __builtin_prefetch(next_v + line);
      }
    }
    const Elem* k = head_block(task.k_layer, block_index) + int64_t{offset} * d;
    const Elem* v = head_block(task.v_layer, block_index) + int64_t{offset} * d;
    float* scores = task.scores;
    ops.Scores(k, n, scores);
    if (pos + n > min_limit) {
      for (int t = 0; t < n; ++t) {
        for (int r = 0; r < kTileRows; ++r) {
          if (pos + t >= task.limit[r]) scores[t * kTileRows + r] = kNegInf;
        }
      }
    }
    float block_max[kTileRows] = {kNegInf, kNegInf, kNegInf, kNegInf};
    for (int t = 0; t < n; ++t) {
      for (int r = 0; r < kTileRows; ++r) {
        block_max[r] = std::max(block_max[r], scores[t * kTileRows + r]);
      }
    }
    float shift[kTileRows];
    for (int r = 0; r < kTileRows; ++r) {
      const float new_max = std::max(task.max[r], block_max[r]);
      if (new_max != task.max[r]) {
        const float alpha = task.max[r] == kNegInf ? 0.0f : std::exp2(task.max[r] - new_max);
        float* acc = task.acc + r * d;
        for (int j = 0; j < d; ++j) acc[j] *= alpha;
        task.sum[r] *= alpha;
        task.max[r] = new_max;
      }
      // A row that has seen nothing yet keeps max -inf; its masked scores stay -inf -> 0.
      shift[r] = new_max == kNegInf ? 0.0f : new_max;
    }
    ops.Exp2(scores, shift, n, task.sum);
    ops.AccumulateValues(scores, v, n, task.acc);
    pos += n;
  }
}

// RunTile instantiated with Ops<dtype>.
template <template <DType> class Ops>
TileKernel TileKernelFor(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return &RunTile<Ops<DType::kF32>>;
    case DType::kF16:
      return &RunTile<Ops<DType::kF16>>;
    case DType::kBF16:
      return &RunTile<Ops<DType::kBF16>>;
  }
  return nullptr;
}

}  // namespace kvtier::attention_internal

#endif  // KVTIER_CACHE_KV_ATTENTION_TILE_H_
