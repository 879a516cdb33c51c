#include "tests/service/prefix_kv_conversation.h"

#include <cmath>
#include <string>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/types/span.h"
#include "cache/kv/reference_attention.h"
#include "client/step.h"
#include "gtest/gtest.h"
#include "shard/pool_shape.h"

namespace kvtier::test {
namespace {

// `count` values in [-1, 1] from `rng`, exact in `dtype`.
std::vector<float> RoundedValues(DType dtype, int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(count);
  uint32_t bits = 0;
  for (float& value : values) {
    StoreFromFloat(dtype, uniform(rng), &bits, 0);
    value = LoadAsFloat(dtype, &bits, 0);
  }
  return values;
}

// K or V (`which` 0 or 1) of position `p` of `tokens` at `layer`: determined by tokens [0, p].
std::vector<float> PrefixKv(DType dtype, int64_t width, const std::vector<int32_t>& tokens, int p,
                            int layer, int which) {
  std::mt19937_64 rng(absl::HashOf(absl::MakeConstSpan(tokens).subspan(0, p + 1), layer, which));
  return RoundedValues(dtype, width, rng);
}

void AppendBytes(DType dtype, const std::vector<float>& values, std::string* bytes) {
  const size_t first = bytes->size() / DTypeSize(dtype);
  bytes->resize(bytes->size() + values.size() * DTypeSize(dtype));
  for (size_t i = 0; i < values.size(); ++i)
    StoreFromFloat(dtype, values[i], bytes->data(), first + i);
}

}  // namespace

PrefixKvConversation::PrefixKvConversation(std::unique_ptr<Session> session,
                                           std::vector<int32_t> history)
    : session_(std::move(session)), tokens_(std::move(history)) {}

absl::Status PrefixKvConversation::Say(const std::vector<int32_t>& tokens, std::mt19937_64& rng,
                                       int32_t* cached, bool check) {
  const v1::ModelSpec& model = session_->model();
  const DType dtype = DTypeFromProto(model.dtype()).value();
  const int hq = model.num_q_heads(), hkv = model.num_kv_heads(), d = model.head_dim();
  absl::StatusOr<int32_t> found = session_->Extend(tokens);
  if (!found.ok()) return found.status();
  if (cached != nullptr) *cached = *found;
  const int first = static_cast<int>(tokens_.size()) + *found;
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  const int context = static_cast<int>(tokens_.size());
  const int rows = context - first;
  absl::StatusOr<std::unique_ptr<Step>> step = session_->BeginStep();
  if (!step.ok()) return step.status();
  for (int layer = 0; layer < model.num_layers(); ++layer) {
    const std::vector<float> q = RoundedValues(dtype, int64_t{rows} * hq * d, rng);
    std::string q_bytes, k_bytes, v_bytes;
    AppendBytes(dtype, q, &q_bytes);
    std::vector<float> k_all, v_all;
    for (int p = check ? 0 : first; p < context; ++p) {
      const std::vector<float> k = PrefixKv(dtype, int64_t{hkv} * d, tokens_, p, layer, 0);
      const std::vector<float> v = PrefixKv(dtype, int64_t{hkv} * d, tokens_, p, layer, 1);
      k_all.insert(k_all.end(), k.begin(), k.end());
      v_all.insert(v_all.end(), v.begin(), v.end());
      if (p >= first) {
        AppendBytes(dtype, k, &k_bytes);
        AppendBytes(dtype, v, &v_bytes);
      }
    }
    std::string out(q_bytes.size(), '\0');
    if (absl::Status status = (*step)->Attend(layer, q_bytes, k_bytes, v_bytes,
                                              absl::MakeSpan(out.data(), out.size()));
        !status.ok()) {
      return status;
    }
    if (!check) continue;
    ReferenceAttentionShape shape;
    shape.context_len = context;
    shape.num_queries = rows;
    shape.num_q_heads = hq;
    shape.num_kv_heads = hkv;
    shape.head_dim = d;
    const std::vector<double> want = ReferenceAttention(shape, q, k_all, v_all);
    int mismatches = 0;
    for (size_t e = 0; e < want.size(); ++e) {
      const double got = LoadAsFloat(dtype, out.data(), e);
      if (std::abs(got - want[e]) > AttentionToleranceFor(dtype).Bound(want[e]) &&
          ++mismatches <= 3) {
        ADD_FAILURE() << "session " << session_->id() << " layer " << layer << " element " << e
                      << ": got " << got << ", want " << want[e] << " (context " << context
                      << ", rows " << rows << ")";
      }
    }
  }
  return (*step)->Finish();
}

}  // namespace kvtier::test
