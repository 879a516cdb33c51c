// A Mooncake request trace (the FAST'25 release): one JSON object a
// line, {"timestamp": ms, "input_length": tokens, "output_length": tokens, "hash_ids": [...]},
// where hash_ids names the prompt's blocks of 512 tokens and equal ids at the same position
// mean a shared prefix. Also the token ids a replay gives each request, so that equal hash ids
// give equal tokens.
//
// Pure functions, safe to call from any thread.
#ifndef KVTIER_CLIENT_LOAD_MOONCAKE_TRACE_H_
#define KVTIER_CLIENT_LOAD_MOONCAKE_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvtier {

// Tokens per hash id.
inline constexpr int kTraceBlockTokens = 512;

struct TraceRequest {
  int64_t timestamp_ms = 0;
  int32_t input_length = 0;  // >= 1
  int32_t output_length = 0;
  // ceil(input_length / kTraceBlockTokens) ids, each >= 0.
  std::vector<int64_t> hash_ids;
};

// Parses the trace's lines, skipping blank ones. INVALID_ARGUMENT naming the line (from 1)
// and the column or field at fault: "line 3: hash_ids: expected 2 ids for input_length 600
// (512 tokens each), got 1".
absl::StatusOr<std::vector<TraceRequest>> ParseMooncakeTrace(absl::string_view text);

// Reads and parses the trace at `path`; errors start with the path.
absl::StatusOr<std::vector<TraceRequest>> ReadMooncakeTrace(const std::string& path);

// The tokens each 512-token block becomes when a replay scales lengths by `length_scale` (in
// (0, 1]): round(512 * length_scale), at least 1.
int ScaledBlockTokens(double length_scale);

// The request's prompt with each of its blocks `block_tokens` long: block i holds the first
// block_tokens of the ids that hash_ids[i] maps to (drawn from a generator seeded by the id, in
// [0, 2^17)), so equal ids give equal tokens; the last block only its share of input_length -
// 512 * (len - 1), scaled likewise (at least 1). At 512, input_length tokens.
std::vector<int32_t> RequestTokens(const TraceRequest& request,
                                   int block_tokens = kTraceBlockTokens);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_MOONCAKE_TRACE_H_
