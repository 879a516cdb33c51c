#include "client/load/json_report.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "client/load/json_writer.h"
#include "client/load/load_analysis.h"

namespace kvtier {
namespace {

// Quantiles of the spectrum plot: 50% to 99.99%.
constexpr double kSpectrum[] = {0.5,   0.75,  0.9,   0.95,   0.98,  0.99,
                                0.995, 0.998, 0.999, 0.9995, 0.9999};

double Ms(int64_t nanoseconds) { return nanoseconds / 1e6; }
double Ratio(int64_t part, int64_t whole) { return whole == 0 ? 0 : double(part) / whole; }
double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// count, mean, min, the reported percentiles, max; in ms unless `scale` says otherwise.
void Latency(JsonWriter& json, const LatencyHistogram& h, bool spectrum, double scale = 1e-6) {
  json.BeginObject();
  json.Field("count", h.count());
  json.Field("mean", h.mean() * scale);
  json.Field("min", h.min() * scale);
  for (size_t i = 0; i < std::size(kReportedQuantiles); ++i) {
    json.Field(kReportedQuantileNames[i], h.Percentile(kReportedQuantiles[i]) * scale);
  }
  json.Field("max", h.max() * scale);
  if (spectrum) {
    json.Key("spectrum");
    json.BeginArray();
    for (double q : kSpectrum) {
      json.BeginArray();
      json.Double(q);
      json.Double(h.Percentile(q) * scale);
      json.EndArray();
    }
    json.EndArray();
  }
  json.EndObject();
}

// "token_ms" and "ttft_ms" of a slice, tenant or session.
void TokenAndTtft(JsonWriter& json, const LatencyHistogram& token, const LatencyHistogram& ttft) {
  json.Key("token_ms");
  Latency(json, token, /*spectrum=*/false);
  json.Key("ttft_ms");
  Latency(json, ttft, /*spectrum=*/false);
}

void Config(JsonWriter& json, const LoadConfig& c, const v1::ModelSpec& model) {
  json.Key("config");
  json.BeginObject();
  json.Field("mode", LoadModeName(c.mode));
  json.Field("coordinator", c.coordinator);
  json.Field("tenant", c.tenant);
  json.Field("tenants", c.tenants);
  json.Field("tenant_skew", c.tenant_skew);
  json.Field("trace", c.trace_path);
  json.Field("trace_requests", static_cast<int64_t>(c.trace.size()));
  json.Field("speedup", c.speedup);
  json.Field("max_requests", c.max_requests);
  json.Field("trace_length_scale", c.trace_length_scale);
  json.Field("slo", c.slo.ToString());
  json.Field("seed", static_cast<int64_t>(c.seed));
  json.Field("sessions", c.sessions);
  json.Field("session_rate", c.session_rate);
  json.Field("burstiness", c.burstiness);
  json.Field("max_sessions", c.max_sessions);
  json.Field("turns", c.turns);
  json.Field("system_tokens", c.system_tokens);
  json.Field("prefix_groups", c.prefix_groups);
  json.Field("prompt_tokens", c.prompt_tokens.ToString());
  json.Field("decode_tokens", c.decode_tokens.ToString());
  json.Field("think_ms", c.think_ms.ToString());
  json.Field("retain_s", Seconds(c.retain_for));
  json.Field("warmup_s", Seconds(c.warmup));
  json.Field("duration_s", Seconds(c.duration));
  json.Field("slice_s", Seconds(c.slice));
  json.Field("verify", c.verify_fraction);
  json.EndObject();
  json.Key("model");
  json.BeginObject();
  json.Field("name", model.id().name());
  json.Field("version", model.id().version());
  json.Field("layers", model.num_layers());
  json.Field("q_heads", model.num_q_heads());
  json.Field("kv_heads", model.num_kv_heads());
  json.Field("head_dim", model.head_dim());
  json.Field("dtype", v1::Dtype_Name(model.dtype()));
  json.Field("block_size", model.block_size());
  json.Field("shards", model.num_shards());
  json.EndObject();
}

void Summary(JsonWriter& json, const LoadResult& r, const Slo& slo) {
  const LoadCounts& n = r.counts;
  json.Key("summary");
  json.BeginObject();
  json.Field("elapsed_s", Seconds(r.elapsed));
  json.Field("measured_s", Seconds(r.measured));
  json.Field("sessions_started", n.sessions_started);
  json.Field("sessions_completed", n.sessions_completed);
  json.Field("turns", n.turns);
  json.Field("decode_tokens", n.decode_tokens);
  json.Field("tokens_per_s",
             r.measured > absl::ZeroDuration() ? n.decode_tokens / Seconds(r.measured) : 0.0);
  json.Field("prompt_tokens", n.prompt_tokens);
  json.Field("cached_tokens", n.cached_tokens);
  json.Field("hit_rate", Ratio(n.cached_tokens, n.prompt_tokens));
  json.Field("layer_round_trips", n.layer_round_trips);
  json.Key("latency_ms");
  json.BeginObject();
  const std::pair<const char*, const LatencyHistogram*> latencies[] = {
      {"layer_round_trip", &r.latencies.layer_round_trip},
      {"token", &r.latencies.token},
      {"ttft", &r.latencies.ttft},
      {"ttft_service", &r.latencies.ttft_service},
      {"turn", &r.latencies.turn},
      {"turn_service", &r.latencies.turn_service},
  };
  for (const auto& [name, histogram] : latencies) {
    json.Key(name);
    Latency(json, *histogram, /*spectrum=*/true);
  }
  json.EndObject();
  json.Key("cached_tokens_per_turn");
  Latency(json, r.latencies.cached_tokens, /*spectrum=*/false, /*scale=*/1.0);
  json.Key("errors");
  json.BeginObject();
  for (const auto& [code, count] : n.errors) json.Field(code, count);
  json.EndObject();
  json.Key("verify");
  json.BeginObject();
  json.Field("outputs", n.verified_outputs);
  json.Field("mismatches", n.verify_mismatches);
  json.EndObject();
  const Goodput goodput = SloGoodput(r, slo);
  json.Key("goodput");
  json.BeginObject();
  json.Field("slo", slo.ToString());
  json.Field("sessions", goodput.sessions);
  json.Field("sessions_met", goodput.met);
  json.Field("share", goodput.share());
  json.EndObject();
  json.Key("session_token_p99_ms");
  Latency(json, SessionTokenP99s(r), /*spectrum=*/false);
  json.Key("worst_sessions");
  json.BeginArray();
  for (const SessionRow* row : WorstSessions(r, 5)) {
    json.BeginObject();
    json.Field("index", row->index);
    json.Field("session_id", row->session_id);
    json.Field("token_p99_ms", Ms(row->token.Percentile(0.99)));
    json.EndObject();
  }
  json.EndArray();
  json.Key("client");
  json.BeginObject();
  json.Field("cpu_s", r.cost.cpu_seconds);
  json.Field("cpu_us_per_layer_round_trip", CpuMicrosPerLayerRoundTrip(r));
  json.Field("cores", r.cost.cores);
  json.Field("timed_sends", r.cost.sends);
  json.Field("late_sends", r.cost.late_sends);
  json.Field("bottleneck", ToolBottleneck(r));
  json.EndObject();
  json.EndObject();
}

void Slices(JsonWriter& json, const LoadResult& r, absl::Duration slice) {
  json.Key("slices");
  json.BeginArray();
  for (const LoadSlice& s : r.slices) {
    json.BeginObject();
    json.Field("start_s", Seconds(s.start));
    json.Field("warmup", s.warmup);
    json.Field("decode_tokens", s.decode_tokens);
    // The last slice ends with the run.
    json.Field("tokens_per_s", s.decode_tokens / Seconds(std::min(slice, r.elapsed - s.start)));
    json.Field("turns", s.turns);
    json.Field("prompt_tokens", s.prompt_tokens);
    json.Field("cached_tokens", s.cached_tokens);
    json.Field("hit_rate", Ratio(s.cached_tokens, s.prompt_tokens));
    json.Field("errors", s.errors);
    json.Field("max_active_sessions", s.max_active_sessions);
    TokenAndTtft(json, s.token, s.ttft);
    json.EndObject();
  }
  json.EndArray();
}

void Tenants(JsonWriter& json, const LoadConfig& c, const LoadResult& r) {
  json.Key("tenants");
  json.BeginArray();
  for (const TenantRow& row : TenantRows(r, c.tenants, c.slo)) {
    json.BeginObject();
    json.Field("tenant", row.tenant);
    json.Field("name", TenantName(c, row.tenant));
    json.Field("sessions", row.sessions);
    json.Field("sessions_met_slo", row.sessions_met_slo);
    json.Field("prompt_tokens", row.prompt_tokens);
    json.Field("cached_tokens", row.cached_tokens);
    json.Field("hit_rate", Ratio(row.cached_tokens, row.prompt_tokens));
    TokenAndTtft(json, row.token, row.ttft);
    json.EndObject();
  }
  json.EndArray();
}

void Sessions(JsonWriter& json, const LoadResult& r) {
  json.Key("sessions");
  json.BeginArray();
  for (const SessionRow& row : r.sessions) {
    json.BeginObject();
    json.Field("index", row.index);
    json.Field("session_id", row.session_id);
    json.Field("tenant", row.tenant);
    json.Field("prefix_group", row.prefix_group);
    json.Field("verified", row.verified);
    json.Field("start_s", Seconds(row.start));
    json.Field("turns", row.turns);
    json.Field("decode_tokens", row.decode_tokens);
    json.Field("prompt_tokens", row.prompt_tokens);
    json.Field("cached_tokens", row.cached_tokens);
    TokenAndTtft(json, row.token, row.ttft);
    json.Field("error", row.error);
    json.EndObject();
  }
  json.EndArray();
}

}  // namespace

std::string LoadReportJson(const LoadConfig& config, const v1::ModelSpec& model,
                           const LoadResult& result) {
  JsonWriter json;
  json.BeginObject();
  json.Field("schema_version", kLoadReportSchemaVersion);
  json.Field("tool", "kvtier-load");
  Config(json, config, model);
  Summary(json, result, config.slo);
  Slices(json, result, config.slice);
  Tenants(json, config, result);
  Sessions(json, result);
  json.EndObject();
  return json.text();
}

}  // namespace kvtier
