#include "tests/bench/decode_bench_support.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace kvtier::bench {

double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

int64_t PoolTokensFor(const std::vector<int>& batches, const std::vector<int>& contexts,
                      int64_t max_pool_bytes) {
  int64_t tokens = 0;
  for (int batch : batches) {
    for (int context : contexts) {
      if (int64_t{batch} * context * kTokenKvBytes <= max_pool_bytes) {
        tokens = std::max(tokens, int64_t{batch} * context);
      }
    }
  }
  return tokens;
}

std::vector<SequenceLayout> DecodeLayouts(absl::Span<const int32_t> shuffled_blocks, int batch,
                                          int context) {
  const int blocks_per_sequence = context / kBlockSize;
  std::vector<SequenceLayout> layouts;
  for (int s = 0; s < batch; ++s) {
    layouts.push_back(
        {shuffled_blocks.subspan(int64_t{s} * blocks_per_sequence, blocks_per_sequence), context,
         1});
  }
  return layouts;
}

absl::Status FillWithRandomKv(KvPool& pool) {
  constexpr int kChunkTokens = 4096;
  const KvPoolShape& shape = pool.shape();
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::string k(kChunkTokens * shape.token_bytes(), '\0');
  std::string v(k.size(), '\0');
  const int64_t elements = static_cast<int64_t>(k.size()) / DTypeSize(shape.dtype);
  for (int64_t i = 0; i < elements; ++i) {
    StoreFromFloat(shape.dtype, dist(rng), k.data(), i);
    StoreFromFloat(shape.dtype, dist(rng), v.data(), i);
  }
  std::vector<int64_t> slots;
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    for (int64_t first = 0; first < shape.num_slots(); first += kChunkTokens) {
      slots.resize(std::min<int64_t>(kChunkTokens, shape.num_slots() - first));
      std::iota(slots.begin(), slots.end(), first);
      const size_t bytes = slots.size() * shape.token_bytes();
      if (absl::Status status = pool.WriteKv(layer, slots, absl::MakeConstSpan(k.data(), bytes),
                                             absl::MakeConstSpan(v.data(), bytes));
          !status.ok()) {
        return status;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace kvtier::bench
