// The final table a run prints: the latencies of the measured window at p50..p99.99 (with the
// service times beside the intended-time ones in open loop), per-tenant rows (with --tenants),
// the counts and hit rate, goodput (with --slo), errors
// by code, the per-session p99 spread with the worst sessions, verification, and the tool's own
// cost with a warning when it was the bottleneck. Pure function.
#ifndef KVTIER_CLIENT_LOAD_TERMINAL_REPORT_H_
#define KVTIER_CLIENT_LOAD_TERMINAL_REPORT_H_

#include <string>

#include "client/load/load_config.h"
#include "client/load/load_result.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

std::string LoadReportTable(const LoadConfig& config, const v1::ModelSpec& model,
                            const LoadResult& result);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_TERMINAL_REPORT_H_
