// Dense attention in double precision with plain loops: the reference the kernels are tested
// against. It sees one sequence's whole context in token order, no blocks, no tricks.
// Pure function; thread-safe.
#ifndef KVTIER_CACHE_REFERENCE_ATTENTION_H_
#define KVTIER_CACHE_REFERENCE_ATTENTION_H_

#include <vector>

namespace kvtier {

struct ReferenceAttentionShape {
  int context_len = 0;  // C
  int num_queries = 0;  // n: the last n positions, causal
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  double scale = 0.0;  // 0: 1/sqrt(head_dim)
};

// q: [n][num_q_heads][head_dim]; k, v: [C][num_kv_heads][head_dim]. Returns
// [n][num_q_heads][head_dim].
std::vector<double> ReferenceAttention(const ReferenceAttentionShape& shape,
                                       const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v);

}  // namespace kvtier

#endif  // KVTIER_CACHE_REFERENCE_ATTENTION_H_
