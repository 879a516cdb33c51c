// Internal to the CPU attention (attention.cc and its kernels): one unit of work, a "tile", and
// the loop that runs it.
//
// A tile is up to kTileRows query rows that read the same KV head (the heads of one GQA group,
// then the next query token's), swept over a token range of one sequence's context, for each of
// a group of consecutive KV heads (AttentionPlan's head group). Each K/V block of a head is
// loaded once per tile and used by every row: this is what turns GQA's group size into
// arithmetic per byte. The sweep goes block by block and, within a block, head by head: a
// block's heads are adjacent in the pool, so K and V are read in runs of the whole group's
// pieces. State per head and row is the online-softmax triple in the log2 domain (scores are
// scaled by scale * log2 e, so 2^x replaces e^x): running max m, running sum l, and the
// unnormalized output acc[head_dim].
//
// NOTE: blocks are scattered, so hardware prefetchers stop at each run's edge. The sweep
// prefetches the piece (one head of one block) it will read about kPrefetchBytes of K and V
// later, spread through the Q.K and P.V loops at the rate they read lines, so that the loads
// stream while the arithmetic runs. Measured on Sapphire Rapids, batch 8 x 16k, 2 threads:
// 16 lines asked for at a time gave 0.60 of the read reference, a line per line read 0.68, no
// prefetch 0.46; distances from 8 to 64 KiB were within the noise of each other.
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
// The most KV heads a CPU unit covers (AttentionPlanOptions::max_kv_heads_per_unit).
inline constexpr int kMaxKvHeadsPerUnit = 8;
// How far ahead of its reads a sweep prefetches, in bytes of its K and V.
inline constexpr int64_t kPrefetchBytes = 16 << 10;

struct TileTask {
  // One layer of K and V, [num_blocks][num_kv_heads][block_size][head_dim].
  const void* k_layer = nullptr;
  const void* v_layer = nullptr;
  const int32_t* block_table = nullptr;
  int first_kv_head = 0;
  int kv_heads = 1;  // heads [first_kv_head, first_kv_head + kv_heads)
  int num_kv_heads = 0;
  int block_size = 0;
  int head_dim = 0;
  // Context positions [begin, end) to sweep.
  int begin = 0;
  int end = 0;
  // [kv_heads][kTileRows][head_dim] queries, the model dtype's values in fp32. Rows past the
  // real ones repeat a real row; their results are ignored.
  const float* q = nullptr;
  float scale = 0.0f;         // softmax scale times log2 e: scores are in the log2 domain
  int limit[kTileRows] = {};  // row r sees positions < limit[r], in every head
  // Online-softmax state, in and out: acc [kv_heads][kTileRows][head_dim], max and sum
  // [kv_heads][kTileRows].
  float* acc = nullptr;
  float* max = nullptr;
  float* sum = nullptr;
  // Scratch: [kv_heads][kTileRows][head_dim] floats for the queries as the Ops prepare them,
  // and [kMaxBlockSize][kTileRows] floats of scores.
  float* prepared_q = nullptr;
  float* scores = nullptr;
};

using TileKernel = void (*)(const TileTask& task);

// The kernels for `dtype`; null when the CPU lacks the ISA or the head_dim does not fit it.
TileKernel PortableTileKernel(DType dtype);
TileKernel Avx2TileKernel(DType dtype, int head_dim);
TileKernel Avx512TileKernel(DType dtype, int head_dim);

// Spreads prefetches (into L2) of the cache lines of [ahead, ahead + bytes) over the steps of a
// loop that reads `bytes_per_step` bytes a step, at the rate it reads them: a few lines every
// step, or one line every few steps; none when `ahead` is null. The Ops step it once per step
// of their loops and pass bytes_per_step as a constant, so that no division is left per call.
class PrefetchSpreader {
 public:
  PrefetchSpreader(const void* ahead, int64_t bytes, int bytes_per_step)
      : next_(static_cast<const char*>(ahead)),
        end_(ahead == nullptr ? next_ : next_ + bytes),
        lines_per_step_(bytes_per_step >= 64 ? (bytes_per_step + 63) / 64 : 1),
        every_(bytes_per_step >= 64 ? 1 : 64 / bytes_per_step),
        countdown_(every_) {}

  void Step() {
    if (--countdown_ > 0) return;
    countdown_ = every_;
    for (int i = 0; i < lines_per_step_ && next_ < end_; ++i, next_ += 64) {
      __builtin_prefetch(next_, 0, 2);
    }
  }

 private:
  const char* next_;
  const char* const end_;
  const int lines_per_step_;
  const int every_;
  int countdown_;
};

// Even-odd order: within each chunk of `width` values, the even-indexed ones, then the odd
// ones. Kernels that widen bf16 pairs in one step (the even element of a 32-bit lane by a
// shift, the odd by a mask) keep queries and accumulators in it (their FinishValues undoes it).
inline void ToEvenOddOrder(const float* in, int count, int width, float* out) {
  for (int chunk = 0; chunk < count; chunk += width) {
    for (int i = 0; i < width; ++i) out[chunk + i % 2 * width / 2 + i / 2] = in[chunk + i];
  }
}

// An Ops object is built once per tile from (head_dim, scale) and provides, for its element
// type Elem, with q a head's [kTileRows][head_dim] queries as PrepareQueries leaves them and
// acc that head's accumulators:
//   PrepareQueries(q, prepared):  the fp32 queries in the layout Scores reads
//   Scores(q, k, n, visible, k_ahead, scores, block_max): scores[t][r] = scale *
//                                dot(q[r], k[t]) for t < visible[r] (<= n), -inf for the other
//                                t < n, and block_max[r] = the max over t of scores[t][r];
//                                prefetching the n rows at k_ahead on the way
//   Exp2(x, shift, n, sum):      x[t][r] = 2^(x[t][r] - shift[r]), 0 where that is < -126 (so
//                                for -inf), and sum[r] += the new x[t][r] over t < n
//   AccumulateValues(p, v, n, v_ahead, acc): acc[r] += sum over t < n of p[t][r] * v[t],
//                                prefetching the n rows at v_ahead on the way
//   FinishValues(acc):           acc in natural order, after the last AccumulateValues
// Scores and Exp2 may also fill x[t] for t from n up to their vector step (4 tokens at most)
// with -inf and 0: the scores scratch has room, as kMaxBlockSize is a multiple of 4.
// NOTE: the scores go from Scores to Exp2 to AccumulateValues through memory, so the Ops store
// and load them in whole vectors: a masked or partial store there stalls every load that reads
// it (no store forwarding), as the scalar masking and max loops this replaced did.
template <typename Ops>
void RunTile(const TileTask& task) {
  using Elem = typename Ops::Elem;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const Ops ops(task.head_dim, task.scale);
  const int block_size = task.block_size;
  const int d = task.head_dim;
  const int64_t tile_elems = int64_t{kTileRows} * d;
  const int64_t piece_elems = int64_t{block_size} * d;  // one head of one block
  auto piece = [&](const void* layer, int block_index, int head) {
    const int64_t block = task.block_table[block_index];
    return static_cast<const Elem*>(layer) +
           (block * task.num_kv_heads + task.first_kv_head + head) * piece_elems;
  };
  if (task.begin >= task.end) return;
  for (int h = 0; h < task.kv_heads; ++h) {
    ops.PrepareQueries(task.q + h * tile_elems, task.prepared_q + h * tile_elems);
  }
  const int last_block = (task.end - 1) / block_size;
  // Pieces (one head of one block, K and V) are read in sweep order: block by block, head by
  // head. Each piece's Ops prefetch the piece `ahead` places later.
  // At most kMaxBlockSize x kMaxHeadDim fp32 values: 1 MiB.
  const int piece_bytes = static_cast<int>(piece_elems * int64_t{sizeof(Elem)});
  const int ahead = static_cast<int>(std::max<int64_t>(1, kPrefetchBytes / (2 * piece_bytes)));
  const int first_block = task.begin / block_size;
  // The pieces before the first that a sweep prefetches: all at once.
  for (int a = 1; a < ahead; ++a) {
    const int block = first_block + a / task.kv_heads;
    if (block > last_block) break;
    const int head = a % task.kv_heads;
    PrefetchSpreader(piece(task.k_layer, block, head), piece_bytes, piece_bytes).Step();
    PrefetchSpreader(piece(task.v_layer, block, head), piece_bytes, piece_bytes).Step();
  }
  // The piece `ahead` places after the one being read, advanced with it.
  int ahead_block = first_block + ahead / task.kv_heads;
  int ahead_head = ahead % task.kv_heads;

  for (int pos = task.begin; pos < task.end;) {
    const int block_index = pos / block_size;
    const int offset = pos % block_size;
    const int n = std::min(block_size - offset, task.end - pos);
    int visible[kTileRows];
    for (int r = 0; r < kTileRows; ++r) visible[r] = std::clamp(task.limit[r] - pos, 0, n);
    for (int h = 0; h < task.kv_heads; ++h) {
      const Elem* k = piece(task.k_layer, block_index, h) + int64_t{offset} * d;
      const Elem* v = piece(task.v_layer, block_index, h) + int64_t{offset} * d;
      const bool prefetch = ahead_block <= last_block;
      const Elem* k_ahead = prefetch ? piece(task.k_layer, ahead_block, ahead_head) : nullptr;
      const Elem* v_ahead = prefetch ? piece(task.v_layer, ahead_block, ahead_head) : nullptr;
      if (++ahead_head == task.kv_heads) {
        ahead_head = 0;
        ++ahead_block;
      }
      float* acc = task.acc + h * tile_elems;
      float* max = task.max + h * kTileRows;
      float* sum = task.sum + h * kTileRows;
      float* scores = task.scores;
      float block_max[kTileRows];
      ops.Scores(task.prepared_q + h * tile_elems, k, n, visible, k_ahead, scores, block_max);
      float shift[kTileRows];
      for (int r = 0; r < kTileRows; ++r) {
        const float new_max = std::max(max[r], block_max[r]);
        if (new_max != max[r]) {
          const float alpha = max[r] == kNegInf ? 0.0f : std::exp2(max[r] - new_max);
          for (int j = 0; j < d; ++j) acc[r * d + j] *= alpha;
          sum[r] *= alpha;
          max[r] = new_max;
        }
        // A row that has seen nothing yet keeps max -inf; its masked scores stay -inf -> 0.
        shift[r] = new_max == kNegInf ? 0.0f : new_max;
      }
      ops.Exp2(scores, shift, n, sum);
      ops.AccumulateValues(scores, v, n, v_ahead, acc);
    }
    pos += n;
  }
  for (int h = 0; h < task.kv_heads; ++h) ops.FinishValues(task.acc + h * tile_elems);
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
