// Dense attention in double precision with plain loops: the reference the kernels are tested
// against. It sees one sequence's whole context in token order, no blocks, no tricks.
// Pure function; thread-safe.
#ifndef KVTIER_CACHE_KV_REFERENCE_ATTENTION_H_
#define KVTIER_CACHE_KV_REFERENCE_ATTENTION_H_

#include <vector>

#include "cache/kv/dtype.h"

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

// How far a kernel's output in `dtype` may be from the reference: |got - want| <= atol +
// rtol * |want|. rtol covers the one rounding of the output to the dtype (half an ulp: 2^-9
// bf16, 2^-11 fp16), atol the fp32 accumulation over the context.
struct AttentionTolerance {
  double atol;
  double rtol;

  double Bound(double want) const { return atol + rtol * (want < 0 ? -want : want); }
};
AttentionTolerance AttentionToleranceFor(DType dtype);

}  // namespace kvtier

#endif  // KVTIER_CACHE_KV_REFERENCE_ATTENTION_H_
