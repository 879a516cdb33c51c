// The --html report of a run: one self-contained HTML file (no network: the data is the JSON
// report inline, the plots are SVG drawn by an inline script) with the headline numbers, the
// latency table and six plots: token latency over time with p50-p99 bands and error markers,
// the percentile spectrum to p99.99, the per-session token p99 histogram, throughput, active
// sessions and prefix hit rate over time. Each plot is an <svg> with a stable id
// ("plot-latency-over-time", "plot-spectrum", "plot-session-p99", "plot-throughput",
// "plot-active-sessions", "plot-hit-rate"); once all are drawn the body has
// data-rendered="yes". Pure function.
#ifndef KVTIER_CLIENT_LOAD_HTML_REPORT_H_
#define KVTIER_CLIENT_LOAD_HTML_REPORT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace kvtier {

// `report_json`: LoadReportJson's text.
std::string LoadReportHtml(absl::string_view report_json);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_HTML_REPORT_H_
