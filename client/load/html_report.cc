#include "client/load/html_report.h"

#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

constexpr absl::string_view kHead = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kvtier-load report</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; max-width: 1120px; }
h1 { font-size: 20px; margin: 0 0 4px; }
#headline { color: #555; margin: 0 0 12px; }
table { border-collapse: collapse; margin-bottom: 16px; }
th, td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
.plots { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 4px; padding: 8px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg { width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
</style>
</head>
<body>
<h1>kvtier-load</h1>
<p id="headline"></p>
<table id="latency-table"></table>
<div class="plots">
<figure><figcaption>Token latency over time: p50, p90, p99 (ms); errors in red</figcaption>
<svg id="plot-latency-over-time" viewBox="0 0 540 270"></svg></figure>
<figure><figcaption>Percentile spectrum (ms)</figcaption>
<svg id="plot-spectrum" viewBox="0 0 540 270"></svg></figure>
<figure><figcaption>Per-session token p99 (sessions)</figcaption>
<svg id="plot-session-p99" viewBox="0 0 540 270"></svg></figure>
<figure><figcaption>Throughput (decode tokens/s)</figcaption>
<svg id="plot-throughput" viewBox="0 0 540 270"></svg></figure>
<figure><figcaption>Active sessions</figcaption>
<svg id="plot-active-sessions" viewBox="0 0 540 270"></svg></figure>
<figure><figcaption>Prefix hit rate (cached / prompt tokens, %)</figcaption>
<svg id="plot-hit-rate" viewBox="0 0 540 270"></svg></figure>
</div>
<script type="application/json" id="kvtier-load-data">)html";

constexpr absl::string_view kTail = R"html(</script>
<script>
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("kvtier-load-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const W = 540, H = 270, L = 58, R = 14, T = 22, B = 34;

  function add(parent, name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }
  function fmt(v) {
    if (v === null || !isFinite(v)) return "-";
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(2);
  }
  function extent(values, zero) {
    let lo = zero ? 0 : Infinity, hi = zero ? 0 : -Infinity;
    for (const v of values) { if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi <= lo) hi = lo + 1;
    return [lo, hi];
  }
  // A line chart: opts.series [{name, color, points: [[x, y]], bars (axes and legend only)}],
  // opts.band {lower, upper,
  // color}, opts.markers [x], opts.xTicks [[x, label]] (else numeric), opts.xLabel.
  function chart(id, opts) {
    const svg = document.getElementById(id);
    const all = opts.series.flatMap(s => s.points);
    const [x0, x1] = extent(all.map(p => p[0]).concat(opts.xDomain || []), false);
    const [, y1] = extent(all.map(p => p[1]), true);
    const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const sy = y => H - B - y / y1 * (H - T - B);
    add(svg, "rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fafafa", stroke: "#ccc"});
    for (let i = 0; i <= 4; ++i) {
      const y = y1 * i / 4;
      add(svg, "line", {x1: L, x2: W - R, y1: sy(y), y2: sy(y), stroke: "#e4e4e4"});
      add(svg, "text", {x: L - 4, y: sy(y) + 4, "text-anchor": "end"}, fmt(y));
    }
    const ticks = opts.xTicks || [0, 1, 2, 3, 4].map(i => { const x = x0 + (x1 - x0) * i / 4; return [x, fmt(x)]; });
    ticks.forEach(([x, label], i) => {
      const anchor = i === 0 ? "start" : i === ticks.length - 1 ? "end" : "middle";
      add(svg, "text", {x: sx(x), y: H - B + 14, "text-anchor": anchor}, label);
    });
    add(svg, "text", {x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle"}, opts.xLabel);
    if (all.length === 0) {
      add(svg, "text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no data");
      return;
    }
    if (opts.band) {
      const pts = opts.band.upper.map(p => sx(p[0]) + "," + sy(p[1]))
          .concat(opts.band.lower.slice().reverse().map(p => sx(p[0]) + "," + sy(p[1])));
      add(svg, "polygon", {points: pts.join(" "), fill: opts.band.color, "fill-opacity": 0.25, stroke: "none", class: "band"});
    }
    for (const x of opts.markers || []) {
      add(svg, "line", {x1: sx(x), x2: sx(x), y1: T, y2: H - B, stroke: "#d62728", "stroke-width": 2, class: "error-marker"});
    }
    let lx = L + 6;
    for (const s of opts.series) {
      if (!s.bars) {
        add(svg, "polyline", {points: s.points.map(p => sx(p[0]) + "," + sy(p[1])).join(" "),
                              fill: "none", stroke: s.color, "stroke-width": 1.8, class: "series"});
      }
      for (const p of s.points.length === 1 && !s.bars ? s.points : []) {
        add(svg, "circle", {cx: sx(p[0]), cy: sy(p[1]), r: 3, fill: s.color});
      }
      add(svg, "rect", {x: lx, y: 6, width: 10, height: 10, fill: s.color});
      add(svg, "text", {x: lx + 14, y: 15}, s.name);
      lx += 24 + 7 * s.name.length;
    }
  }
  function bars(id, values, xLabel) {
    const svg = document.getElementById(id);
    if (values.length === 0) { chart(id, {series: [], xLabel: xLabel}); return; }
    const [lo, hiRaw] = extent(values, false);
    const n = Math.min(20, Math.max(1, values.length));
    const hi = hiRaw + (hiRaw - lo) * 1e-9;
    const counts = new Array(n).fill(0);
    for (const v of values) counts[Math.min(n - 1, Math.floor((v - lo) / (hi - lo) * n))] += 1;
    const width = (hi - lo) / n;
    chart(id, {series: [{name: "sessions", color: "#1f77b4", bars: true,
                         points: counts.map((c, i) => [lo + (i + 0.5) * width, c])}],
               xLabel: xLabel, xDomain: [lo, hi]});
    const [, y1] = extent(counts, true);
    const sx = x => L + (x - lo) / (hi - lo) * (W - L - R);
    counts.forEach((c, i) => {
      const h = c / y1 * (H - T - B);
      add(svg, "rect", {x: sx(lo + i * width) + 1, y: H - B - h, width: Math.max(1, sx(lo + width) - sx(lo) - 2),
                        height: h, fill: "#1f77b4", "fill-opacity": 0.6, class: "bar"});
    });
  }

  const s = data.summary, c = data.config, m = data.model;
  const slices = data.slices;
  const mid = x => x.start_s + c.slice_s / 2;
  document.getElementById("headline").textContent =
      c.mode + " loop on model " + m.name + " (" + m.layers + " layers, " + m.q_heads + "/" + m.kv_heads +
      " heads, head_dim " + m.head_dim + ", " + m.dtype + ", " + m.shards + " shards): " +
      fmt(s.measured_s) + " s measured, " + s.sessions_started + " sessions, " + fmt(s.tokens_per_s) +
      " tokens/s, hit rate " + fmt(100 * s.hit_rate) + "%, errors " +
      Object.values(s.errors).reduce((a, b) => a + b, 0);

  const table = document.getElementById("latency-table");
  const names = ["count", "mean", "p50", "p90", "p99", "p99_9", "p99_99", "max"];
  const head = table.insertRow();
  for (const name of ["latency (ms)"].concat(names)) {
    const th = document.createElement("th"); th.textContent = name.replace("_", "."); head.appendChild(th);
  }
  for (const key in s.latency_ms) {
    const row = table.insertRow();
    row.insertCell().textContent = key.replace(/_/g, " ");
    for (const name of names) row.insertCell().textContent = name === "count" ? s.latency_ms[key][name] : fmt(s.latency_ms[key][name]);
  }

  const measured = slices.filter(x => x.token_ms.count > 0);
  const at = q => measured.map(x => [mid(x), x.token_ms[q]]);
  chart("plot-latency-over-time", {
    series: [{name: "p50", color: "#1f77b4", points: at("p50")},
             {name: "p90", color: "#ff7f0e", points: at("p90")},
             {name: "p99", color: "#9467bd", points: at("p99")}],
    band: {lower: at("p50"), upper: at("p99"), color: "#9467bd"},
    markers: slices.filter(x => x.errors > 0).map(mid),
    xLabel: "seconds from start"});
  const spectrum = [["token", "#1f77b4"], ["ttft", "#2ca02c"], ["layer_round_trip", "#ff7f0e"]]
      .filter(([key]) => s.latency_ms[key].count > 0)
      .map(([key, color]) => ({name: key.replace(/_/g, " "), color: color,
                               points: s.latency_ms[key].spectrum.map(([q, v]) => [-Math.log10(1 - q), v])}));
  chart("plot-spectrum", {series: spectrum, xLabel: "percentile",
    xTicks: [[Math.log10(2), "p50"], [1, "p90"], [2, "p99"], [3, "p99.9"], [4, "p99.99"]],
    xDomain: [Math.log10(2), 4]});
  bars("plot-session-p99", data.sessions.filter(x => x.token_ms.count > 0).map(x => x.token_ms.p99),
       "token p99 of a session (ms)");
  chart("plot-throughput", {series: [{name: "tokens/s", color: "#2ca02c", points: slices.map(x => [mid(x), x.tokens_per_s])}],
    markers: slices.filter(x => x.errors > 0).map(mid), xLabel: "seconds from start"});
  chart("plot-active-sessions", {series: [{name: "active (max)", color: "#8c564b",
    points: slices.map(x => [mid(x), x.max_active_sessions])}], xLabel: "seconds from start"});
  chart("plot-hit-rate", {series: [{name: "hit rate %", color: "#17becf",
    points: slices.filter(x => x.prompt_tokens > 0).map(x => [mid(x), 100 * x.hit_rate])}],
    xLabel: "seconds from start"});
  document.body.dataset.rendered = "yes";
})();
</script>
</body>
</html>
)html";

}  // namespace

std::string LoadReportHtml(absl::string_view report_json) {
  return absl::StrCat(kHead, report_json, kTail);
}

}  // namespace kvtier
