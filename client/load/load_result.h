// LoadResult: what one kvtier-load run measured, as the report writers (terminal, JSON, HTML)
// read it: the summary histograms and counters of the measured window (after --warmup), the
// time series of slices (the whole run, warm-up included), one row per conversation, and the
// tool's own cost. Built by LoadRecorder; the metrics are defined in the README ("kvtier-load").
//
// Plain values; no locking.
#ifndef KVTIER_CLIENT_LOAD_LOAD_RESULT_H_
#define KVTIER_CLIENT_LOAD_LOAD_RESULT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/load/latency_histogram.h"

namespace kvtier {

// The latencies, in nanoseconds. "Service" ones are timed from when the call was actually
// sent; the others from when it was meant to be (the session's arrival, or the previous turn's
// end plus think time), which corrects for coordinated omission in open loop. In closed loop the
// two are the same.
struct LoadLatencies {
  LatencyHistogram layer_round_trip;  // one Attend: every shard's message of one layer
  LatencyHistogram token;             // one decode step, all layers, its control calls included
  LatencyHistogram ttft;              // turn start to the first decode token done
  LatencyHistogram ttft_service;
  LatencyHistogram turn;  // turn start to EndTurn done
  LatencyHistogram turn_service;
  LatencyHistogram cached_tokens;  // per turn: prompt tokens found cached (a count, not ns)
};

// Counters of the measured window.
struct LoadCounts {
  int64_t sessions_started = 0;
  int64_t sessions_completed = 0;  // every turn done, closed
  int64_t turns = 0;
  int64_t decode_tokens = 0;
  int64_t prompt_tokens = 0;  // sent in Extend at turn starts
  int64_t cached_tokens = 0;  // of those, found cached
  int64_t layer_round_trips = 0;
  int64_t verified_outputs = 0;  // layer outputs checked against the reference
  int64_t verify_mismatches = 0;
  std::map<std::string, int64_t> errors;  // by gRPC code name ("UNAVAILABLE")
};

// One --slice of the run, by the time samples completed.
struct LoadSlice {
  absl::Duration start;  // from the run's start
  bool warmup = false;   // starts before --warmup ends
  LatencyHistogram token;
  LatencyHistogram ttft;
  int64_t decode_tokens = 0;
  int64_t turns = 0;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t errors = 0;
  int max_active_sessions = 0;
};

// One conversation, its measured samples only.
struct SessionRow {
  int64_t index = 0;
  int tenant = 0;
  int prefix_group = 0;
  bool verified = false;
  std::string session_id;
  absl::Duration start;  // intended, from the run's start
  int turns = 0;         // completed
  int64_t decode_tokens = 0;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  LatencyHistogram token;
  LatencyHistogram ttft;
  std::string error;  // the status that ended it early; empty if none
};

// What the tool itself cost, and whether it kept up.
struct ClientCost {
  double cpu_seconds = 0;  // the process's CPU time over the run (every thread)
  int cores = 0;           // the machine's
  int64_t sends = 0;       // timed sends: arrivals and turn starts after think time
  int64_t late_sends = 0;  // of those, started more than kLateSend after their time
};

struct LoadResult {
  absl::Duration elapsed;   // the whole run
  absl::Duration measured;  // the measured window: elapsed less warm-up
  LoadLatencies latencies;
  LoadCounts counts;
  std::vector<LoadSlice> slices;
  std::vector<SessionRow> sessions;  // those with measured samples, by index
  ClientCost cost;
};

// A send later than this after its intended time, with nothing but the tool's own scheduling
// in the way, counts as late.
inline constexpr absl::Duration kLateSend = absl::Milliseconds(2);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_LOAD_RESULT_H_
