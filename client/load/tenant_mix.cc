#include "client/load/tenant_mix.h"

#include <algorithm>
#include <cmath>

namespace kvtier {

TenantMix::TenantMix(int count, double skew) {
  double total = 0;
  for (int k = 0; k < count; ++k) cumulative_.push_back(total += std::pow(k + 1.0, -skew));
  for (double& c : cumulative_) c /= total;
  cumulative_.back() = 1;
}

double TenantMix::Probability(int tenant) const {
  return cumulative_[tenant] - (tenant == 0 ? 0 : cumulative_[tenant - 1]);
}

int TenantMix::Sample(std::mt19937_64& rng) const {
  const double u = std::uniform_real_distribution<double>()(rng);
  return static_cast<int>(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) -
                          cumulative_.begin());
}

}  // namespace kvtier
