// LoadConfig: everything one kvtier-load run does, as its flags give it (load_main.cc maps the
// flags in; ValidateLoadConfig checks them, naming the flag at fault). The JSON and HTML reports
// carry it back so a report says how it was made.
//
// A plain value; no locking.
#ifndef KVTIER_CLIENT_LOAD_LOAD_CONFIG_H_
#define KVTIER_CLIENT_LOAD_LOAD_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/load/distribution.h"
#include "client/load/mooncake_trace.h"
#include "client/load/slo.h"

namespace kvtier {

enum class LoadMode {
  kClosed,  // --sessions conversations at a time, the next starting when one ends
  kOpen,    // conversations arrive at --session_rate (or the --trace's timestamps), at most
            // --max_sessions at a time
};

struct LoadConfig {
  std::string coordinator;
  std::string model;  // empty: the tier's only model
  std::string model_version;
  std::string tenant;  // the tenants' name (one tenant), or their names' stem (tenant-K)
  int tenants = 1;
  double tenant_skew = 0;  // Zipf exponent of the tenants' shares (TenantMix)
  LoadMode mode = LoadMode::kClosed;
  uint64_t seed = 1;

  // Closed loop.
  int sessions = 4;
  // Open loop: arrivals a second; gaps are gamma with shape 1 / burstiness^2 (burstiness 1:
  // Poisson; larger: burstier), at most max_sessions conversations at a time.
  double session_rate = 10;
  double burstiness = 1;
  int max_sessions = 64;

  // Trace replay (--trace, open loop): each request of `trace` a one-turn conversation whose
  // whole prompt is its hash ids' blocks (each 512 * trace_length_scale tokens) and whose reply
  // is output_length * trace_length_scale tokens, arriving at timestamp / speedup; the first
  // max_requests requests (0: all) that arrive before warmup + duration (0: no limit).
  std::string trace_path;
  std::vector<TraceRequest> trace;  // read from trace_path by load_main
  double speedup = 1;
  int64_t max_requests = 0;
  double trace_length_scale = 1;

  // Each conversation.
  int turns = 3;
  int system_tokens = 0;  // shared by the sessions of a prefix group, before their own
  int prefix_groups = 1;
  Distribution prompt_tokens = Distribution::Constant(64);  // each turn's own tokens
  Distribution decode_tokens = Distribution::Constant(16);  // each turn's reply
  Distribution think_ms = Distribution::Constant(0);        // between turns
  absl::Duration retain_for = absl::Minutes(1);             // EndTurn's retention

  // Time: nothing starts after warmup + duration; zero duration (closed loop only): every
  // --sessions slot runs one conversation. Samples starting before warmup are left out of the
  // summary and the per-session rows, not out of the slices.
  absl::Duration warmup = absl::ZeroDuration();
  absl::Duration duration = absl::ZeroDuration();
  absl::Duration slice = absl::Seconds(1);

  Slo slo;                     // goodput: the share of sessions meeting all its targets
  double verify_fraction = 0;  // of the sessions, each of whose outputs is checked
  absl::Duration progress_every = absl::Seconds(1);
  std::string json_path;
  std::string html_path;
};

// "closed" or "open".
const char* LoadModeName(LoadMode mode);

// The name sessions of tenant `tenant` (from 0) are opened for: --tenant when there is one,
// else "<--tenant>-<tenant>".
std::string TenantName(const LoadConfig& config, int tenant);

// INVALID_ARGUMENT naming the flag (--sessions, --turns, ...) and the bad value.
absl::Status ValidateLoadConfig(const LoadConfig& config);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_LOAD_CONFIG_H_
