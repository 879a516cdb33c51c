#include "client/load/load_analysis.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace kvtier {

LatencyHistogram SessionTokenP99s(const LoadResult& result) {
  LatencyHistogram p99s;
  for (const SessionRow& row : result.sessions) {
    if (row.token.count() > 0) p99s.Record(row.token.Percentile(0.99));
  }
  return p99s;
}

std::vector<const SessionRow*> WorstSessions(const LoadResult& result, int count) {
  std::vector<const SessionRow*> rows;
  for (const SessionRow& row : result.sessions) {
    if (row.token.count() > 0) rows.push_back(&row);
  }
  std::sort(rows.begin(), rows.end(), [](const SessionRow* a, const SessionRow* b) {
    return a->token.Percentile(0.99) > b->token.Percentile(0.99);
  });
  if (static_cast<int>(rows.size()) > count) rows.resize(count);
  return rows;
}

bool MetSlo(const SessionRow& row, const Slo& slo) {
  return row.error.empty() && slo.Met(row.token, row.ttft);
}

std::vector<TenantRow> TenantRows(const LoadResult& result, int tenants, const Slo& slo) {
  std::vector<TenantRow> rows(tenants);
  for (int tenant = 0; tenant < tenants; ++tenant) rows[tenant].tenant = tenant;
  for (const SessionRow& session : result.sessions) {
    TenantRow& row = rows[session.tenant];
    ++row.sessions;
    if (MetSlo(session, slo)) ++row.sessions_met_slo;
    row.prompt_tokens += session.prompt_tokens;
    row.cached_tokens += session.cached_tokens;
    row.token.Merge(session.token);
    row.ttft.Merge(session.ttft);
  }
  return rows;
}

Goodput SloGoodput(const LoadResult& result, const Slo& slo) {
  Goodput goodput;
  for (const SessionRow& row : result.sessions) {
    ++goodput.sessions;
    if (MetSlo(row, slo)) ++goodput.met;
  }
  return goodput;
}

double CpuMicrosPerLayerRoundTrip(const LoadResult& result) {
  const int64_t round_trips = result.counts.layer_round_trips;
  return round_trips == 0 ? 0 : result.cost.cpu_seconds * 1e6 / round_trips;
}

std::string ToolBottleneck(const LoadResult& result) {
  const ClientCost& cost = result.cost;
  if (cost.sends > 0 && cost.late_sends * 100 > cost.sends) {
    return absl::StrFormat("%d of %d timed sends started more than %s late", cost.late_sends,
                           cost.sends, absl::FormatDuration(kLateSend));
  }
  const double seconds = absl::ToDoubleSeconds(result.elapsed);
  if (cost.cores > 0 && seconds > 0 && cost.cpu_seconds > 0.9 * cost.cores * seconds) {
    return absl::StrFormat("kvtier-load used %.0f%% of the machine's %d cores",
                           100 * cost.cpu_seconds / seconds / cost.cores, cost.cores);
  }
  return "";
}

}  // namespace kvtier
