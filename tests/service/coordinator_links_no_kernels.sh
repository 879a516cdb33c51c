#!/usr/bin/env bash
# The coordinator holds metadata only: its binary must link no attention kernels, K/V pools,
# CUDA or data-plane code. Usage: coordinator_links_no_kernels.sh PATH/TO/kvtier-coordinator
set -euo pipefail
binary=$1
symbols=$(nm -C "$binary")
found=$(grep -E '[Aa]ttention|KvPool|cuda|nccl' <<<"$symbols" || true)
if [ -n "$found" ]; then
  echo "$binary links engine or data-plane code:"
  head -20 <<<"$found"
  exit 1
fi
echo "$binary: $(wc -l <<<"$symbols") symbols, none naming attention, KvPool, cuda or nccl"
