#!/usr/bin/env bash
# The Helm chart deploy/helm/kvtier, checked without a cluster: `helm lint --strict` over every
# value set in its ci/ folder; every invalid set of tests/deploy/invalid-values/ refused, with
# the message its `# expect:` line names (by the schema, in lint and template, or, marked
# `# by: template`, by the chart's own checks when rendered); a
# Kubernetes older than the chart's kubeVersion refused; `helm template` of every set for
# several Kubernetes versions, with and without the Prometheus Operator's API, each document
# validated against the API types (validate_manifests.mjs) and checked for what it means
# (check_semantics.mjs); NOTES.txt rendered for every set; and those checks shown to fail on
# manifests broken on purpose.
# Installs its tools first (install_chart_tools.sh). Exits non-zero on the first failure.
#   helm_chart_test.sh [--help]
set -euo pipefail
if [ "${1:-}" = --help ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
# shellcheck source=tests/deploy/chart_env.sh
source "$(dirname "$0")/chart_env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
namespace=kvtier-test
kube_versions=(1.25.0 1.28.0 1.31.0)
monitoring_api=monitoring.coreos.com/v1/ServiceMonitor
checks=0

fail() {
  echo "FAIL $*"
  exit 1
}

sets=("$chart"/ci/*.yaml)
echo "== helm lint --strict over ${#sets[@]} value sets"
for set in "${sets[@]}"; do
  for kube in "${kube_versions[@]}"; do
    "$helm" lint --strict "$chart" -f "$set" --kube-version "$kube" >"$work/lint" 2>&1 ||
      { cat "$work/lint"; fail "helm lint --strict -f ${set#"$root"/} --kube-version $kube"; }
    checks=$((checks + 1))
  done
  echo "lint ok: ${set#"$root"/}"
done

echo "== invalid value sets are refused, naming the value"
for set in "$here"/invalid-values/*.yaml; do
  expect=$(sed -n 's/^# expect: //p' "$set")
  [ -n "$expect" ] || fail "${set#"$root"/}: no '# expect:' line"
  # The schema's refusals fail the lint too; a template's `fail` is only logged by helm lint.
  if ! grep -q '^# by: template' "$set" &&
    "$helm" lint --strict "$chart" -f "$set" >"$work/lint" 2>&1; then
    fail "helm lint accepted ${set#"$root"/}"
  fi
  if "$helm" template kvtier "$chart" -f "$set" >/dev/null 2>"$work/err"; then
    fail "helm template accepted ${set#"$root"/}"
  fi
  grep -qF -- "$expect" "$work/err" ||
    { cat "$work/err"; fail "${set#"$root"/}: the error does not say: $expect"; }
  checks=$((checks + 2))
  echo "refused: ${set#"$root"/}: $(grep -F -- "$expect" "$work/err" | head -1 | cut -c1-110)"
done
if "$helm" template kvtier "$chart" --kube-version 1.23.0 >/dev/null 2>"$work/err"; then
  fail "helm template accepted Kubernetes 1.23 (kubeVersion >=1.25)"
fi
grep -q "chart requires kubeVersion" "$work/err" || { cat "$work/err"; fail "kubeVersion message"; }
checks=$((checks + 1))

echo "== helm template x ${#kube_versions[@]} Kubernetes versions x with/without $monitoring_api"
rendered=()
for set in "${sets[@]}"; do
  name=$(basename "$set" .yaml)
  for kube in "${kube_versions[@]}"; do
    for api in with without; do
      out=$work/$name-$kube-$api-monitoring.yaml
      extra=()
      [ "$api" = with ] && extra=(--api-versions "$monitoring_api")
      "$helm" template kvtier "$chart" --namespace "$namespace" -f "$set" \
        --kube-version "$kube" "${extra[@]}" >"$out" 2>"$work/err" ||
        { cat "$work/err"; fail "helm template -f ${set#"$root"/} --kube-version $kube"; }
      monitoring=()
      [ "$api" = with ] && monitoring=(--monitoring)
      node "$here/check_semantics.mjs" --namespace="$namespace" "${monitoring[@]}" \
        --values="$chart/values.yaml" --values="$set" "$out" >"$work/check" 2>&1 ||
        { cat "$work/check"; fail "check_semantics: $name, Kubernetes $kube, $api monitoring API"; }
      rendered+=("$out")
      checks=$((checks + 2))
    done
  done
  echo "rendered and checked: $name ($(grep -c '^kind:' "$out") documents)"
done
node "$here/validate_manifests.mjs" "${rendered[@]}" || fail "validate_manifests"
checks=$((checks + 1))

echo "== NOTES.txt renders for every set and tells how to reach the tier"
# helm template leaves NOTES.txt out: a copy of the chart renders it as a template's text.
notes_chart=$work/notes-chart
cp -r "$chart" "$notes_chart"
mv "$notes_chart/templates/NOTES.txt" "$notes_chart/NOTES.render"
printf 'notes: |\n{{ tpl (.Files.Get "NOTES.render") . | indent 2 }}\n' \
  >"$notes_chart/templates/notes-render.yaml"
for set in "${sets[@]}"; do
  "$helm" template kvtier "$notes_chart" --namespace "$namespace" -f "$set" \
    --show-only templates/notes-render.yaml >"$work/notes" 2>&1 ||
    { cat "$work/notes"; fail "NOTES.txt for ${set#"$root"/}"; }
  grep -qF "kvtier-coordinator.$namespace.svc.cluster.local:50051" "$work/notes" ||
    { cat "$work/notes"; fail "NOTES.txt for ${set#"$root"/}: no coordinator address"; }
  grep -q "helm test kvtier" "$work/notes" || fail "NOTES.txt for ${set#"$root"/}: no helm test"
  checks=$((checks + 1))
done

echo "== the checks fail on manifests broken on purpose"
# mutate SET SED-SCRIPT CHECKER EXPECTED: SET's rendering edited by SED-SCRIPT must make
# CHECKER (semantics or validate) fail, saying EXPECTED.
mutate() {
  local base=$work/$1-${kube_versions[0]}-without-monitoring.yaml broken=$work/broken.yaml
  sed -e "$2" "$base" >"$broken"
  cmp -s "$base" "$broken" && fail "mutation '$2' changed nothing"
  local run=(node "$here/check_semantics.mjs" --namespace="$namespace"
             --values="$chart/values.yaml" --values="$chart/ci/$1.yaml" "$broken")
  [ "$3" = validate ] && run=(node "$here/validate_manifests.mjs" "$broken")
  if "${run[@]}" >"$work/check" 2>&1; then
    fail "$3 passed manifests mutated by '$2'"
  fi
  grep -qF -- "$4" "$work/check" || { cat "$work/check"; fail "'$2': expected: $4"; }
  checks=$((checks + 1))
  echo "caught: $1 '$2': $(grep -F -- "$4" "$work/check" | head -1 | cut -c1-100)"
}
mutate default-values 's/^  replicas: 2$/  replicas: 3/' semantics 'shard replicas 3'
mutate default-values '/registry-service.yaml/,/^---/{/publishNotReadyAddresses/d}' semantics \
  'must select the coordinator and publish'
mutate default-values 's/service: kvtier.v1.AttentionService/service: kvtier.v1.Attention/' \
  semantics 'is not one of'
mutate default-values 's/port: 50051$/port: 50052/' semantics 'is not a declared containerPort'
mutate default-values 's/targetPort: grpc/targetPort: grcp/' semantics 'targetPort grcp not declared'
# shellcheck disable=SC2016 # $(POD_NAME) is Kubernetes' expansion, not the shell's
mutate default-values 's/--advertise=$(POD_NAME)/--advertise=$(HOSTNAME)/' semantics \
  'expected its stable DNS name'
mutate default-values '/--fail_on_errors/d' semantics 'fail on any error'
mutate default-values 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' semantics \
  'root fs not read-only'
mutate default-values 's/path: shard.token/path: shard-token/' semantics 'has no item shard.token'
mutate gpu-values '/nvidia.com\/gpu: 1/d' semantics 'nvidia.com/gpu expected 1'
mutate secured-values '/- --tls_require_client_cert/d' semantics '--tls_require_client_cert'
mutate default-values 's/publishNotReadyAddresses: true/publishNotReadyAddress: true/' validate \
  'spec.publishNotReadyAddress: not a field of V1Service'
mutate default-values 's/containerPort: 50061/containerPort: "50061"/' validate 'must be integer'

echo "helm_chart_test: $checks passed, 0 failed"
