// What the report writers derive from a LoadResult the same way: the distribution of the
// sessions' token p99s, the worst sessions, the tool's CPU per layer round trip, and whether the
// tool rather than the tier was the bottleneck. Pure functions.
#ifndef KVTIER_CLIENT_LOAD_LOAD_ANALYSIS_H_
#define KVTIER_CLIENT_LOAD_LOAD_ANALYSIS_H_

#include <string>
#include <vector>

#include "client/load/latency_histogram.h"
#include "client/load/load_result.h"

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
// The tool's CPU microseconds per layer round trip (0 when there was none).
double CpuMicrosPerLayerRoundTrip(const LoadResult& result);
// Why the numbers may measure the tool rather than the tier: more than 1% of timed sends late,
// or the tool's CPU above 90% of the machine's cores; empty when neither.
std::string ToolBottleneck(const LoadResult& result);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_LOAD_ANALYSIS_H_
