// Portable tile kernels: plain loops, any CPU, any head_dim.
#include <cmath>
#include <type_traits>

#include "cache/kv/attention_tile.h"
#include "cache/kv/dtype.h"

namespace kvtier::attention_internal {
namespace {

template <DType kDType>
class PortableOps {
 public:
  using Elem = std::conditional_t<kDType == DType::kF32, float, uint16_t>;

  PortableOps(const float* q, int d, float scale) : q_(q), d_(d), scale_(scale) {}

  void Scores(const Elem* k, int n, float* scores) const {
    for (int t = 0; t < n; ++t) {
      float dots[kTileRows] = {};
      for (int j = 0; j < d_; ++j) {
        const float key = Load(k[int64_t{t} * d_ + j]);
        for (int r = 0; r < kTileRows; ++r) dots[r] += q_[r * d_ + j] * key;
      }
      for (int r = 0; r < kTileRows; ++r) scores[t * kTileRows + r] = dots[r] * scale_;
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

  void AccumulateValues(const float* p, const Elem* v, int n, float* acc) const {
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < d_; ++j) {
        const float value = Load(v[int64_t{t} * d_ + j]);
        for (int r = 0; r < kTileRows; ++r) acc[r * d_ + j] += p[t * kTileRows + r] * value;
      }
    }
  }

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

  const float* const q_;
  const int d_;
  const float scale_;
};

}  // namespace

TileKernel PortableTileKernel(DType dtype) { return TileKernelFor<PortableOps>(dtype); }

}  // namespace kvtier::attention_internal
