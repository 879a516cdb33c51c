// The --json report of a run: one JSON object, schema_version 1, with the configuration, the
// model, the summary of the measured window (goodput under --slo included), the slices, one
// row per tenant and one row per session. Field names
// are stable within a schema version; the README ("kvtier-load", "JSON report") lists them.
// Latencies are in milliseconds, times in seconds from the run's start. Pure function.
#ifndef KVTIER_CLIENT_LOAD_JSON_REPORT_H_
#define KVTIER_CLIENT_LOAD_JSON_REPORT_H_

#include <string>

#include "client/load/load_config.h"
#include "client/load/load_result.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

inline constexpr int kLoadReportSchemaVersion = 1;

std::string LoadReportJson(const LoadConfig& config, const v1::ModelSpec& model,
                           const LoadResult& result);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_JSON_REPORT_H_
