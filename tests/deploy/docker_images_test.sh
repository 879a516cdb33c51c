#!/usr/bin/env bash
# The container images of deploy/docker: builds them with deploy/docker/build (which starts a
# Docker daemon and builds the offline base when missing), then checks that each runs as
# uid/gid 10001, holds no compiler and no -dev package, loads every library its binaries need
# and answers --help; then runs a tier from them on the host's loopback (docker run --network
# host, read-only root file systems): a coordinator and two CPU shards on free ports, waits
# for each to report SERVING by grpc.health.v1 (buf curl), and runs a short kvtier-load from
# the coordinator image that must complete every session without an error, its outputs
# verified against dense attention; then each server's --metrics_listen serves Prometheus
# text that counts what the load did. Containers are removed on exit.
#   docker_images_test.sh SOURCE_DIR BUF [TAG]   (TAG default dev)
set -euo pipefail
source_dir=$1
buf=$2
tag=${3:-dev}
coordinator_image=kvtier-coordinator:$tag
shard_image=kvtier-shard:$tag
label=kvtier-docker-images-test=$$

cleanup() {
  docker ps -aq --filter "label=$label" 2>/dev/null | xargs -r docker rm -f >/dev/null || true
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for container in $(docker ps -aq --filter "label=$label"); do
    echo "--- log of $(docker inspect -f '{{.Name}}' "$container"):"
    docker logs --tail 30 "$container" 2>&1
  done
  exit 1
}

[ -x "$buf" ] || fail "buf not found at \"$buf\": run scripts/install-deps"

start=$SECONDS
"$source_dir/deploy/docker/build" --tag="$tag"
echo "images built in $((SECONDS - start)) s"

# inside IMAGE COMMAND...: runs COMMAND in a throwaway container of IMAGE.
inside() {
  local image=$1
  shift
  docker run --rm --entrypoint "$1" "$image" "${@:2}"
}
for image in "$coordinator_image" "$shard_image"; do
  ids=$(inside "$image" id -u):$(inside "$image" id -g)
  [ "$ids" = 10001:10001 ] || fail "$image runs as uid:gid $ids, expected 10001:10001"
  # shellcheck disable=SC2016 # $c is the container's
  compilers=$(inside "$image" sh -c \
    'for c in cc gcc g++ c++ clang clang++; do command -v $c; done' || true)
  [ -z "$compilers" ] || fail "$image holds compilers: $compilers"
  # shellcheck disable=SC2016 # dpkg-query's format
  dev=$(inside "$image" dpkg-query -W -f='${Package}\n' | grep -- '-dev$' || true)
  [ -z "$dev" ] || fail "$image holds -dev packages: $dev"
  missing=$(inside "$image" sh -c 'ldd /usr/local/bin/*' | grep 'not found' || true)
  [ -z "$missing" ] || fail "$image lacks libraries: $missing"
  echo "$image: uid/gid 10001, no compiler, no -dev package, every library there"
done
# check_help IMAGE PROGRAM: PROGRAM --help exits 0 and names the program.
check_help() {
  local out
  out=$(docker run --rm --entrypoint "$2" "$1" --help 2>&1) || fail "$2 --help in $1 failed: $out"
  grep -q "^$2: " <<<"$out" || fail "$2 --help in $1 does not name it: $(head -3 <<<"$out")"
  echo "$1: $2 --help works"
}
check_help "$coordinator_image" kvtier-coordinator
check_help "$coordinator_image" kvtier-ctl
check_help "$coordinator_image" kvtier-load
check_help "$shard_image" kvtier-shard
for pair in "$coordinator_image kvtier-coordinator" "$shard_image kvtier-shard"; do
  read -r image program <<<"$pair"
  entrypoint=$(docker image inspect -f '{{join .Config.Entrypoint " "}}' "$image")
  [ "$entrypoint" = "$program" ] || fail "$image's entrypoint is \"$entrypoint\", expected $program"
done

# free_port: a loopback port nothing listens on (nothing answers a connection there).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}
coordinator_port=$(free_port)
shard_ports=("$(free_port)" "$(free_port)")
metrics_ports=("$(free_port)" "$(free_port)" "$(free_port)")  # coordinator, shard 0, shard 1
# serve NAME IMAGE ARGS...: a detached server container on the host's network, read-only
# root file system (as in a cluster), /tmp writable.
serve() {
  docker run -d --name "kvtier-test-$$-$1" --label "$label" --network host --read-only \
    --tmpfs /tmp "${@:2}" >/dev/null
}
serve coordinator "$coordinator_image" --listen="127.0.0.1:$coordinator_port" \
  --metrics_listen="127.0.0.1:${metrics_ports[0]}" \
  --model=name=m,layers=2,kv_heads=2,q_heads=4,head_dim=64,blocks=256,shards=2
for i in 0 1; do
  serve "shard$i" "$shard_image" --listen="127.0.0.1:${shard_ports[$i]}" \
    --metrics_listen="127.0.0.1:${metrics_ports[$((i + 1))]}" \
    --coordinator="127.0.0.1:$coordinator_port" --capacity_gib=0.25 --threads=1
done

# serving PORT SERVICE: polls grpc.health.v1 for up to 60 s, as a readiness probe would.
serving() {
  local answer
  for _ in $(seq 120); do
    answer=$("$buf" curl --protocol grpc --http2-prior-knowledge -d "{\"service\":\"$2\"}" \
      "http://127.0.0.1:$1/grpc.health.v1.Health/Check" 2>&1) || true
    if grep -q '"status": "SERVING"' <<<"$answer"; then
      echo "127.0.0.1:$1 ${2:-(whole server)}: SERVING"
      return
    fi
    sleep 0.5
  done
  fail "127.0.0.1:$1 ${2:-(whole server)} not SERVING within 60 s: $answer"
}
serving "$coordinator_port" ""
serving "$coordinator_port" kvtier.v1.SessionService
for port in "${shard_ports[@]}"; do
  serving "$port" ""
  serving "$port" kvtier.v1.AttentionService
done

out=$(docker run --rm --label "$label" --network host --read-only --entrypoint kvtier-load \
  "$coordinator_image" --coordinator="127.0.0.1:$coordinator_port" --sessions=2 --turns=2 \
  --system_tokens=32 --prompt_tokens=16 --decode_tokens=8 --think_ms=0 --warmup=0s \
  --duration=0 --verify=1 2>&1) || fail "kvtier-load exited $?: $out"
echo "$out"
grep -q 'sessions 2 started, 2 completed' <<<"$out" ||
  fail "kvtier-load did not complete its 2 sessions"
grep -q '^errors: none' <<<"$out" || fail "kvtier-load saw errors"
grep -Eq '^verify: [1-9][0-9]* layer outputs checked against the reference, 0 wrong' <<<"$out" ||
  fail "kvtier-load did not verify its outputs as all right"

# scrape PORT: the body of GET /metrics at 127.0.0.1:PORT.
scrape() {
  exec 3<>"/dev/tcp/127.0.0.1/$1" || fail "nothing serves metrics at 127.0.0.1:$1"
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}
# metric PORT PATTERN: the sum of the samples whose line starts with PATTERN (a regex).
metric() {
  scrape "$1" | awk -v p="^$2" '$0 ~ p { sum += $NF; n++ } END { if (n) print sum + 0 }'
}
ready=$(metric "${metrics_ports[0]}" 'kvtier_model_ready[{ ]')
looked_up=$(metric "${metrics_ports[0]}" 'kvtier_prefix_lookup_tokens_total[{ ]')
echo "coordinator /metrics: kvtier_model_ready ${ready:-absent}," \
  "kvtier_prefix_lookup_tokens_total ${looked_up:-absent}"
[ "$ready" = 1 ] || fail "the coordinator's kvtier_model_ready is ${ready:-absent}, expected 1"
# Each session's first turn looks its 48 prompt tokens (32 of system prompt, 16 of its own) up;
# its second resumes the retained session, with no lookup.
[ "$looked_up" = 96 ] ||
  fail "the coordinator looked up ${looked_up:-no} prompt tokens, expected 96 (2 x 48)"
for i in 0 1; do
  layers=$(metric "${metrics_ports[$((i + 1))]}" 'kvtier_shard_layers_total[{ ]')
  echo "shard $i /metrics: kvtier_shard_layers_total ${layers:-absent}"
  [ "${layers:-0}" -gt 0 ] 2>/dev/null || fail "shard $i counted ${layers:-no} layers"
done
echo "PASS: images, a tier of three containers, kvtier-load through it, their metrics"
