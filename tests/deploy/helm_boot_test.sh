#!/usr/bin/env bash
# Boots what the Helm chart renders, without a cluster (boot_tier.mjs): for the chart's default
# value set (generated credentials) and its secured set (mTLS, from a CA and certificate made
# here with openssl for 127.0.0.1), the coordinator, every shard and the helm test pod run with
# their rendered command, args and environment on loopback, the probes' health names reach
# SERVING, the helm test's load passes, and with a shard killed it fails.
#   helm_boot_test.sh --buf=BUF --bin=kvtier-coordinator=PATH --bin=kvtier-shard=PATH
#       --bin=kvtier-load=PATH [SET...]
#   helm_boot_test.sh --buf=BUF --docker=TAG [SET...]
# --bin: the real binaries (local mode); --docker: each container as `docker run --network
# host` of the images kvtier-coordinator:TAG and kvtier-shard:TAG instead. SET: value sets of
# deploy/helm/kvtier/ci by name (default: default-values secured-values).
set -euo pipefail
if [ "${1:-}" = --help ] || [ $# -eq 0 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
# shellcheck source=tests/deploy/chart_env.sh
source "$(dirname "$0")/chart_env.sh"

boot_args=()
sets=()
for arg in "$@"; do
  case $arg in
    --buf=* | --bin=* | --docker=*) boot_args+=("$arg") ;;
    -*) echo "helm_boot_test: unknown option $arg (--help)"; exit 2 ;;
    *) sets+=("$arg") ;;
  esac
done
[ ${#sets[@]} -gt 0 ] || sets=(default-values secured-values)
work=$(mktemp -d)
chmod 755 "$work"  # containers run as uid 10001 and read what is written here
trap 'rm -rf "$work"' EXIT
namespace=kvtier-boot

# A CA and one certificate for every server and client of the tier (as the chart's TLS Secret
# holds one), naming 127.0.0.1, where every address is remapped.
pki=$work/tls
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=kvtier-test-ca \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kvtier-tier \
  -keyout "$pki/tls.key" -out "$pki/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
  >"$pki/ext"
openssl x509 -req -in "$pki/tls.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 1 -extfile "$pki/ext" -out "$pki/tls.crt" 2>/dev/null
secret=$work/kvtier-tls
mkdir -p "$secret"
cp "$pki/ca.crt" "$pki/tls.crt" "$pki/tls.key" "$secret/"
chmod 755 "$secret"
chmod 644 "$secret"/*

for set in "${sets[@]}"; do
  echo "== boot: $set"
  rendered=$work/$set.yaml
  "$helm" template kvtier "$chart" --namespace "$namespace" -f "$chart/ci/$set.yaml" >"$rendered"
  mkdir -p "$work/$set"
  chmod 755 "$work/$set"
  node "$here/boot_tier.mjs" --manifests="$rendered" --namespace="$namespace" \
    --work="$work/$set" --secret=kvtier-tls="$secret" "${boot_args[@]}"
done
echo "helm_boot_test: ${#sets[@]} passed, 0 failed"
