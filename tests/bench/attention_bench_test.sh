#!/bin/bash
# kvtier_bench_attention end to end on its headline case, kept small: both thread counts give a
# row with a positive ratio, the last line is the JSON object, and a bad --batches is refused
# naming the flag. Usage: attention_bench_test.sh KVTIER_BENCH_ATTENTION
set -euo pipefail
bench=$1

out=$("$bench" --batches=8 --contexts=16384 --read_buffer_gib=0.25 --min_seconds=0 \
  --min_samples=3 --resident_context=64 --threads=2)
echo "$out"
for threads in 1 2; do
  if ! grep -Eq "^ +8 +16384 +$threads +[0-9.]+ +[0-9.]+ +[0-9.]+ +0*[0-9]*\.[0-9]*[1-9]" <<<"$out"
  then
    echo "FAIL: no row for batch 8 x 16384 on $threads threads with a positive ratio" >&2
    exit 1
  fi
done
last=$(tail -n 1 <<<"$out")
if ! grep -Eq '^\{"bench":"attention_cpu",.*"threads":2,"batch":8,"ctx":16384,.*"ratio":[0-9.]+\}$' \
  <<<"$last"; then
  echo "FAIL: the last line is not the headline JSON object: $last" >&2
  exit 1
fi

status=0
err=$("$bench" --batches=8,x --contexts=1024 2>&1 >/dev/null) || status=$?
if [[ $status -ne 2 || $err != *"--batches"* ]]; then
  echo "FAIL: --batches=8,x gave exit $status and \"$err\", expected 2 naming --batches" >&2
  exit 1
fi
echo PASS
