// Portable tile kernels: plain loops, any CPU, any head_dim.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cache/kv/attention_tile.h"
#include "cache/kv/dtype.h"

namespace kvtier::attention_internal {
namespace {

template <DType kDType>
class PortableOps {
 public:
  using Elem = std::conditional_t<kDType == DType::kF32, float, uint16_t>;

  PortableOps(int d, float scale) : d_(d), scale_(scale) {}

  void PrepareQueries(const float* q, float* prepared) const {
    std::copy(q, q + kTileRows * d_, prepared);
  }

  void Scores(const float* q, const Elem* k, int n, const int* visible, const Elem* k_ahead,
              float* scores, float* block_max) const {
    // A step reads one token's key.
    PrefetchSpreader prefetch(k_ahead, int64_t{n} * d_ * sizeof(Elem), d_ * sizeof(Elem));
    for (int r = 0; r < kTileRows; ++r) block_max[r] = -std::numeric_limits<float>::infinity();
    for (int t = 0; t < n; ++t) {
      prefetch.Step();
      float dots[kTileRows] = {};
      for (int j = 0; j < d_; ++j) {
        const float key = Load(k[int64_t{t} * d_ + j]);
        for (int r = 0; r < kTileRows; ++r) dots[r] += q[r * d_ + j] * key;
      }
      for (int r = 0; r < kTileRows; ++r) {
        const float score =
            t < visible[r] ? dots[r] * scale_ : -std::numeric_limits<float>::infinity();
        scores[t * kTileRows + r] = score;
        block_max[r] = std::max(block_max[r], score);
      }
    }
  }

  void Exp2(float* x, const float* shift, int n, float* sum) const {
    for (int t = 0; t < n; ++t) {
      for (int r = 0; r < kTileRows; ++r) {
        const float e = x[t * kTileRows + r] - shift[r];
        x[t * kTileRows + r] = e < -126.0f ? 0.0f : std::exp2(e);
        sum[r] += x[t * kTileRows + r];
      }
    }
  }

  void AccumulateValues(const float* p, const Elem* v, int n, const Elem* v_ahead,
                        float* acc) const {
    // A step reads one token's value.
    PrefetchSpreader prefetch(v_ahead, int64_t{n} * d_ * sizeof(Elem), d_ * sizeof(Elem));
    for (int t = 0; t < n; ++t) {
      prefetch.Step();
      for (int j = 0; j < d_; ++j) {
        const float value = Load(v[int64_t{t} * d_ + j]);
        for (int r = 0; r < kTileRows; ++r) acc[r * d_ + j] += p[t * kTileRows + r] * value;
      }
    }
  }

  void FinishValues(float*) const {}

 private:
  static float Load(Elem x) {
    if constexpr (kDType == DType::kF32) {
      return x;
    } else if constexpr (kDType == DType::kF16) {
      return HalfToFloat(x);
    } else {
      return BFloat16ToFloat(x);
    }
  }

  const int d_;
  const float scale_;
};

}  // namespace

TileKernel PortableTileKernel(DType dtype) { return TileKernelFor<PortableOps>(dtype); }

}  // namespace kvtier::attention_internal
