// What the report writers derive from a LoadResult the same way: the distribution of the
// sessions' token p99s, the worst sessions, the per-tenant rows, the goodput under --slo, the
// tool's CPU per layer round trip, and whether the tool rather than the tier was the
// bottleneck. Pure functions.
#ifndef KVTIER_CLIENT_LOAD_LOAD_ANALYSIS_H_
#define KVTIER_CLIENT_LOAD_LOAD_ANALYSIS_H_

#include <string>
#include <vector>

#include "client/load/latency_histogram.h"
#include "client/load/load_result.h"
#include "client/load/slo.h"

namespace kvtier {

// The percentiles every latency is reported at, and their names in the reports.
inline constexpr double kReportedQuantiles[] = {0.5, 0.9, 0.99, 0.999, 0.9999};
inline constexpr const char* kReportedQuantileNames[] = {"p50", "p90", "p99", "p99_9",
                                                         "p99_99"};  // JSON field names
inline constexpr const char* kReportedQuantileLabels[] = {"p50", "p90", "p99", "p99.9",
                                                          "p99.99"};  // table headings

// One value per session with a measured token: its token latency p99.
LatencyHistogram SessionTokenP99s(const LoadResult& result);
// The `count` sessions with the highest token p99, highest first.
std::vector<const SessionRow*> WorstSessions(const LoadResult& result, int count);
// One tenant's sessions (those with measured samples), merged.
struct TenantRow {
  int tenant = 0;
  int64_t sessions = 0;
  int64_t sessions_met_slo = 0;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  LatencyHistogram token;
  LatencyHistogram ttft;
};
// One row per tenant of `tenants`, by tenant.
std::vector<TenantRow> TenantRows(const LoadResult& result, int tenants, const Slo& slo);

// Goodput: of the sessions with measured samples, how many ended without an error and met
// every target of `slo`, each over the session's own samples.
struct Goodput {
  int64_t sessions = 0;
  int64_t met = 0;
  double share() const { return sessions == 0 ? 0 : static_cast<double>(met) / sessions; }
};
Goodput SloGoodput(const LoadResult& result, const Slo& slo);
bool MetSlo(const SessionRow& row, const Slo& slo);

// The tool's CPU microseconds per layer round trip (0 when there was none).
double CpuMicrosPerLayerRoundTrip(const LoadResult& result);
// Why the numbers may measure the tool rather than the tier: more than 1% of timed sends late,
// or the tool's CPU above 90% of the machine's cores; empty when neither.
std::string ToolBottleneck(const LoadResult& result);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_LOAD_ANALYSIS_H_
