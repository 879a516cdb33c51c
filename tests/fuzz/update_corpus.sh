#!/usr/bin/env bash
# Regrows a fuzzer's committed seed corpus: fuzzes from tests/fuzz/corpus/DIR for SECONDS
# (default 300), takes the smallest set of inputs that covers everything found (libFuzzer's
# -merge=1) and keeps its KEEP (default 16) largest inputs, which hold most of that coverage, as
# the new corpus/DIR. Needs the fuzz tree built (scripts/test --fuzz), e.g.
#   tests/fuzz/update_corpus.sh CoordinatorFuzzer coordinator 600
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1 dir=$2 seconds=${3:-300} keep=${4:-16}
fuzzer=build/fuzz/tests/fuzz/$name
seeds=tests/fuzz/corpus/$dir
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/grown" "$work/merged" "$seeds"
"$fuzzer" -max_total_time="$seconds" -entropic=0 -artifact_prefix="$work/" "$work/grown" "$seeds" \
  >"$work/fuzz.log" 2>&1 || { tail -n 40 "$work/fuzz.log"; exit 1; }
"$fuzzer" -merge=1 "$work/merged" "$seeds" "$work/grown" >"$work/merge.log" 2>&1 ||
  { tail -n 40 "$work/merge.log"; exit 1; }
rm -f "$seeds"/*
ls -S "$work/merged" | head -n "$keep" | while read -r input; do
  cp "$work/merged/$input" "$seeds/"
done
echo "$seeds: $(ls "$seeds" | wc -l) seeds, $(cat "$seeds"/* | wc -c) bytes"
