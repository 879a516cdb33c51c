#include "client/load/terminal_report.h"

#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/load/load_analysis.h"
#include "proto/wire/model_spec.h"

namespace kvtier {
namespace {

double Percent(int64_t part, int64_t whole) { return whole == 0 ? 0 : 100.0 * part / whole; }

void AppendRow(std::string& out, absl::string_view name, const LatencyHistogram& h) {
  absl::StrAppendFormat(&out, "%-22s %9d %9.3f", name, h.count(), h.mean() / 1e6);
  for (double q : kReportedQuantiles) absl::StrAppendFormat(&out, " %9.3f", h.Percentile(q) / 1e6);
  absl::StrAppendFormat(&out, " %9.3f\n", h.max() / 1e6);
}

std::string Workload(const LoadConfig& c) {
  const std::string tenants =
      c.tenants == 1 ? ""
                     : absl::StrFormat(", %d tenants (Zipf skew %g)", c.tenants, c.tenant_skew);
  if (!c.trace_path.empty()) {
    return absl::StrFormat(
        "trace replay of %s (%d requests, a one-turn session each) at speedup %g, lengths x %g, "
        "at most %d at a time%s",
        c.trace_path, c.trace.size(), c.speedup, c.trace_length_scale, c.max_sessions, tenants);
  }
  const std::string load =
      c.mode == LoadMode::kClosed
          ? absl::StrFormat("closed loop, %d sessions at a time", c.sessions)
          : absl::StrFormat("open loop, %g sessions/s (burstiness %g), at most %d at a time",
                            c.session_rate, c.burstiness, c.max_sessions);
  return absl::StrFormat(
      "%s, %d turns each: system prompt %d tokens (prefix groups: %d), prompt %s, decode %s, "
      "think %s ms%s",
      load, c.turns, c.system_tokens, c.prefix_groups, c.prompt_tokens.ToString(),
      c.decode_tokens.ToString(), c.think_ms.ToString(), tenants);
}

// Per tenant: sessions, token and TTFT p50/p99/max, prompt tokens found cached.
void AppendTenants(std::string& out, const LoadConfig& c, const LoadResult& r) {
  absl::StrAppendFormat(&out, "\n%-16s %8s %9s %9s %9s %9s %9s %9s %9s\n", "tenant", "sessions",
                        "token p50", "p99", "max", "ttft p50", "p99", "max", "cached");
  for (const TenantRow& row : TenantRows(r, c.tenants, c.slo)) {
    absl::StrAppendFormat(&out, "%-16s %8d", TenantName(c, row.tenant), row.sessions);
    for (const LatencyHistogram* h : {&row.token, &row.ttft}) {
      absl::StrAppendFormat(&out, " %9.3f %9.3f %9.3f", h->Percentile(0.5) / 1e6,
                            h->Percentile(0.99) / 1e6, h->max() / 1e6);
    }
    absl::StrAppendFormat(&out, " %8.1f%%\n", Percent(row.cached_tokens, row.prompt_tokens));
  }
}

}  // namespace

std::string LoadReportTable(const LoadConfig& config, const v1::ModelSpec& model,
                            const LoadResult& r) {
  const LoadCounts& n = r.counts;
  const bool open = config.mode == LoadMode::kOpen;
  std::string out = absl::StrFormat(
      "kvtier-load: tier %s, model %s (%d layers, %d/%d heads, head_dim %d, %s, %d shards)\n"
      "%s\n%.1f s measured (after %.1f s warm-up)\n\n",
      config.coordinator, ModelIdString(model.id()), model.num_layers(), model.num_q_heads(),
      model.num_kv_heads(), model.head_dim(), v1::Dtype_Name(model.dtype()), model.num_shards(),
      Workload(config), absl::ToDoubleSeconds(r.measured), absl::ToDoubleSeconds(config.warmup));
  absl::StrAppendFormat(&out, "%-22s %9s %9s", "latency (ms)", "count", "mean");
  for (const char* name : kReportedQuantileLabels) absl::StrAppendFormat(&out, " %9s", name);
  absl::StrAppendFormat(&out, " %9s\n", "max");
  AppendRow(out, "layer round trip", r.latencies.layer_round_trip);
  AppendRow(out, "token (all layers)", r.latencies.token);
  AppendRow(out, open ? "ttft (from arrival)" : "ttft", r.latencies.ttft);
  if (open) AppendRow(out, "ttft (service)", r.latencies.ttft_service);
  AppendRow(out, open ? "turn (from arrival)" : "turn", r.latencies.turn);
  if (open) AppendRow(out, "turn (service)", r.latencies.turn_service);
  const LatencyHistogram p99s = SessionTokenP99s(r);
  AppendRow(out, "session token p99", p99s);
  if (config.tenants > 1) AppendTenants(out, config, r);

  const double measured = absl::ToDoubleSeconds(r.measured);
  absl::StrAppendFormat(
      &out,
      "\nsessions %d started, %d completed; turns %d; decode tokens %d (%.1f/s); prompt tokens "
      "%d, cached %d (%.1f%%, %.1f a turn)\n",
      n.sessions_started, n.sessions_completed, n.turns, n.decode_tokens,
      measured > 0 ? n.decode_tokens / measured : 0.0, n.prompt_tokens, n.cached_tokens,
      Percent(n.cached_tokens, n.prompt_tokens), r.latencies.cached_tokens.mean());
  if (!config.slo.empty()) {
    const Goodput goodput = SloGoodput(r, config.slo);
    absl::StrAppendFormat(&out,
                          "goodput under --slo=%s: %.3f (%d of %d sessions met every target)\n",
                          config.slo.ToString(), goodput.share(), goodput.met, goodput.sessions);
  }
  std::vector<std::string> worst;
  for (const SessionRow* row : WorstSessions(r, 5)) {
    worst.push_back(absl::StrFormat("#%d %.3f ms", row->index, row->token.Percentile(0.99) / 1e6));
  }
  absl::StrAppend(&out, "worst sessions by token p99: ",
                  worst.empty() ? "none" : absl::StrJoin(worst, ", "), "\n");
  std::vector<std::string> errors;
  for (const auto& [code, count] : n.errors) errors.push_back(absl::StrCat(code, " ", count));
  absl::StrAppend(&out, "errors: ", errors.empty() ? "none" : absl::StrJoin(errors, ", "), "\n");
  if (config.verify_fraction > 0) {
    absl::StrAppendFormat(&out,
                          "verify: %d layer outputs checked against the reference, %d wrong\n",
                          n.verified_outputs, n.verify_mismatches);
  }
  const double wall = absl::ToDoubleSeconds(r.elapsed);
  absl::StrAppendFormat(
      &out,
      "kvtier-load itself: %.2f s CPU (%.0f%% of one core), %.1f us CPU per layer round trip; "
      "%d of %d timed sends late\n",
      r.cost.cpu_seconds, wall > 0 ? 100 * r.cost.cpu_seconds / wall : 0.0,
      CpuMicrosPerLayerRoundTrip(r), r.cost.late_sends, r.cost.sends);
  if (const std::string why = ToolBottleneck(r); !why.empty()) {
    absl::StrAppend(&out, "WARNING: kvtier-load, not the tier, may be the bottleneck: ", why, "\n");
  }
  return out;
}

}  // namespace kvtier
