# shellcheck shell=bash disable=SC2034  # its variables are for the scripts that source it
# Sourced by the chart's tests: installs their tools when missing (install_chart_tools.sh) and
# sets root (the repository), here (tests/deploy), chart (deploy/helm/kvtier), helm, and
# KVTIER_CHART_TOOLS (exported, for the node scripts).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/deploy
chart=$root/deploy/helm/kvtier
export KVTIER_CHART_TOOLS=$root/build/tools/chart
"$here/install_chart_tools.sh" "$KVTIER_CHART_TOOLS"
helm=$KVTIER_CHART_TOOLS/bin/helm
