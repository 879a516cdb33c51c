#!/usr/bin/env bash
# A third-party tool calls grpc.health.v1.Health by name, going by reflection alone: buf curl
# against kvtier-local asks for the whole server and for one service, and gets SERVING; a
# service no server registers is NOT_FOUND.
#   health_by_reflection.sh BUF KVTIER_LOCAL
set -euo pipefail
buf=$1
local_bin=$2
work=$(mktemp -d)
trap 'kill "$tier" 2>/dev/null; wait "$tier" 2>/dev/null; rm -rf "$work"' EXIT
"$local_bin" --port=0 --shards=1 --threads_per_shard=1 --address_file="$work/address" \
  >"$work/out" 2>"$work/err" &
tier=$!
for _ in $(seq 200); do [ -s "$work/address" ] && break; sleep 0.1; done
[ -s "$work/address" ] || { echo "kvtier-local did not start:"; cat "$work/err"; exit 1; }
address=$(cat "$work/address")

check() {  # check BODY EXPECTED: polled for up to 5 s, as a readiness probe would
  local answer
  for _ in $(seq 50); do
    answer=$("$buf" curl --protocol grpc --http2-prior-knowledge --data "$1" \
      "http://$address/grpc.health.v1.Health/Check" 2>&1) || true
    if grep -q "$2" <<<"$answer"; then
      echo "buf curl -d '$1': $2"
      return
    fi
    sleep 0.1
  done
  echo "buf curl -d '$1': expected $2, got: $answer"
  exit 1
}
check '{}' '"status": "SERVING"'
check '{"service": "kvtier.v1.SessionService"}' '"status": "SERVING"'
check '{"service": "no.such.Service"}' 'not_found'
