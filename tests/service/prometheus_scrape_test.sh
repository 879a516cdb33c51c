#!/usr/bin/env bash
# A real Prometheus server scrapes a kvtier-local tier under load (kvtier-load, three tenants,
# one of them named in --tenant_quotas), and its PromQL answer for the prefix hit rate equals
# the ratio of the tier's own counters (AdminService.GetStats through kvtier-ctl stats --json);
# the scraped text passes `promtool check metrics`; the tenant label holds only the configured
# tenant and "other"; a malformed --metrics_listen is refused, naming the flag.
#   prometheus_scrape_test.sh KVTIER_LOCAL KVTIER_LOAD KVTIER_CTL
set -euo pipefail
local_bin=$1
load_bin=$2
ctl_bin=$3
work=$(mktemp -d)
pids=()
clean_up() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap clean_up EXIT

fail() { echo "FAIL: $*"; exit 1; }
wait_for() {  # wait_for WHAT COMMAND...: polls COMMAND for up to 20 s
  local what=$1
  shift
  for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return; sleep 0.1; done
  fail "$what did not happen within 20 s"
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
promql() {  # promql QUERY: the value of its single sample ("" when none)
  curl -sf "http://127.0.0.1:$prometheus_port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json, sys
result = json.load(sys.stdin)["data"]["result"]
print(result[0]["value"][1] if len(result) == 1 else "")'
}

if "$local_bin" --metrics_listen=nonsense >"$work/bad" 2>&1; then fail "--metrics_listen=nonsense was taken"; fi
grep -q -- "--metrics_listen" "$work/bad" || fail "the error does not name --metrics_listen: $(cat "$work/bad")"
echo "kvtier-local --metrics_listen=nonsense: $(cat "$work/bad")"

"$local_bin" --port=0 --shards=2 --threads_per_shard=1 --metrics_listen=127.0.0.1:0 \
  --tenant_quotas=acme-0=100000 --address_file="$work/address" >"$work/tier.out" 2>"$work/tier.err" &
pids+=($!)
wait_for "kvtier-local's start" test -s "$work/address"
address=$(cat "$work/address")
metrics_port=$(sed -n 's/.*metrics of the whole tier on port \([0-9]*\).*/\1/p' "$work/tier.out")
[ -n "$metrics_port" ] || fail "kvtier-local printed no metrics port: $(cat "$work/tier.out")"
echo "tier at $address, metrics at 127.0.0.1:$metrics_port/metrics"

prometheus_port=$(free_port)
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kvtier
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_for "Prometheus's start" curl -sf "http://127.0.0.1:$prometheus_port/-/ready"
echo "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') at 127.0.0.1:$prometheus_port"

"$load_bin" --coordinator="$address" --tenant=acme --tenants=3 --sessions=4 --turns=2 \
  --system_tokens=48 --prefix_groups=2 --prompt_tokens=16 --decode_tokens=4 --duration=4s \
  >"$work/load.out" 2>&1 || { cat "$work/load.out"; fail "kvtier-load failed"; }
grep "errors:" "$work/load.out"

curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$work/scrape.txt"
promtool check metrics <"$work/scrape.txt" || fail "promtool check metrics"
echo "promtool check metrics: $(grep -c '^kvtier_' "$work/scrape.txt") kvtier_ samples pass"

"$ctl_bin" stats --coordinator="$address" --json >"$work/stats.json"
read -r prompt cached < <(python3 -c 'import json, sys
cache = json.load(open(sys.argv[1]))["models"][0]["cache"]
print(cache["prompt_tokens"], cache["cached_tokens"])' "$work/stats.json")
[ "$cached" -gt 0 ] || fail "the load found nothing cached ($cached of $prompt tokens)"

# The load is over: once Prometheus has scraped the final counters, its answer is exact.
final_scraped() { [ "$(promql 'sum(kvtier_prefix_lookup_tokens_total)')" = "$prompt" ]; }
wait_for "a scrape of the final counters" final_scraped
hit_rate=$(promql 'sum(kvtier_prefix_hit_tokens_total) / sum(kvtier_prefix_lookup_tokens_total)')
python3 -c 'import sys
promql, cached, prompt = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sys.exit(abs(promql - cached / prompt) > 1e-9)' "$hit_rate" "$cached" "$prompt" ||
  fail "PromQL hit rate $hit_rate, the tier's counters $cached / $prompt"
echo "PromQL prefix hit rate $hit_rate = the tier's $cached / $prompt tokens"

tenants=$(promql 'count(count by (tenant) (kvtier_prefix_lookup_tokens_total))')
[ "$tenants" = 2 ] || fail "expected the tenant label to hold acme-0 and other, got $tenants values"
for tenant in acme-0 other; do
  value=$(promql "sum(kvtier_prefix_lookup_tokens_total{tenant=\"$tenant\"})")
  if [ -z "$value" ] || [ "$value" = 0 ]; then fail "no lookups under tenant=\"$tenant\""; fi
  echo "tenant=\"$tenant\": $value prompt tokens looked up"
done

extend='method="kvtier.v1.SessionService/Extend",code="OK"'
calls=$(promql "sum(kvtier_rpc_server_duration_seconds_count{$extend})")
if [ -z "$calls" ] || [ "$calls" = 0 ]; then fail "no Extend calls timed"; fi
p99=$(promql "histogram_quantile(0.99, sum by (le) (kvtier_rpc_server_duration_seconds_bucket{$extend}))")
echo "Extend: $calls calls timed, p99 under $p99 s (histogram_quantile)"
