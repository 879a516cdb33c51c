// TenantMix: which of --tenants tenants a conversation belongs to, drawn from a Zipf
// distribution with exponent --tenant_skew: tenant k (from 0) with probability proportional to
// 1 / (k + 1)^skew, so skew 0 is uniform and larger skews put more of the load on the first
// tenants. Draws come from a caller's generator, so a seeded workload draws the same tenants on
// every run.
//
// Immutable after construction; Sample is const and thread-safe given a generator per thread.
#ifndef KVTIER_CLIENT_LOAD_TENANT_MIX_H_
#define KVTIER_CLIENT_LOAD_TENANT_MIX_H_

#include <random>
#include <vector>

namespace kvtier {

class TenantMix {
 public:
  // `count` >= 1, `skew` >= 0 (ValidateLoadConfig checks the flags).
  TenantMix(int count, double skew);

  int count() const { return static_cast<int>(cumulative_.size()); }
  double Probability(int tenant) const;
  int Sample(std::mt19937_64& rng) const;

 private:
  std::vector<double> cumulative_;  // P(tenant <= k); the last is 1
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_TENANT_MIX_H_
