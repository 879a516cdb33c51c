// Slo: the latency targets of --slo ("token_p99=20ms,ttft_p99=200ms") that a session must meet,
// each over that session's own samples, for the run's goodput (the share of sessions meeting
// all of them). A target is METRIC_QUANTILE=DURATION: METRIC token (a decode step) or ttft,
// QUANTILE p50, p90, p99, p99_9 or max, DURATION as Abseil writes one (20ms, 1.5s, 1h).
//
// Immutable after Parse; thread-safe.
#ifndef KVTIER_CLIENT_LOAD_SLO_H_
#define KVTIER_CLIENT_LOAD_SLO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/load/latency_histogram.h"

namespace kvtier {

class Slo {
 public:
  struct Target {
    std::string name;   // "token_p99"
    bool ttft = false;  // of the TTFTs; else of the token latencies
    double quantile = 0;
    absl::Duration limit;
  };

  // Empty text: no targets. INVALID_ARGUMENT naming the bad part: "--slo: \"token_p98=2ms\":
  // expected token or ttft, then _p50, _p90, _p99, _p99_9 or _max".
  static absl::StatusOr<Slo> Parse(absl::string_view text);

  bool empty() const { return targets_.empty(); }
  const std::vector<Target>& targets() const { return targets_; }
  // Whether a session with these samples meets every target; a target over no samples is met.
  bool Met(const LatencyHistogram& token, const LatencyHistogram& ttft) const;
  // As Parse reads it: "token_p99=20ms,ttft_p99=200ms"; "" when empty.
  std::string ToString() const;

 private:
  std::vector<Target> targets_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_SLO_H_
