#!/usr/bin/env bash
# Runs one libFuzzer harness for ctest (tests/fuzz/CMakeLists.txt), its output kept in
# WORK/MODE.log:
#   run_fuzzer.sh seeds FUZZER SEEDS WORK   every file of SEEDS once;
#   run_fuzzer.sh fuzz FUZZER SEEDS WORK    fuzzing for KVTIER_FUZZ_SECONDS (default 25) from
#                                           SEEDS and WORK/corpus (which keeps what it finds),
#                                           printing libFuzzer's final stats.
# Fails on a crash, a sanitizer report, a leak, an input slower than 20 s or over 2 GiB, or a
# seed directory without seeds; then prints the log's end, and the input that failed is in WORK
# (crash-*, leak-*, timeout-*, oom-*).
set -euo pipefail
mode=$1 fuzzer=$2 seeds=$3 work=$4
mkdir -p "$work/corpus"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
log=$work/$mode.log
# NOTE: -entropic=0: libFuzzer 14's entropic schedule spends most of the time on its feature
# counts once inputs hit thousands of features, as these do (several times fewer runs).
options=(-artifact_prefix="$work/" -timeout=20 -rss_limit_mb=2048 -entropic=0)
case $mode in
  seeds)
    shopt -s nullglob
    inputs=("$seeds"/*)
    [ ${#inputs[@]} -gt 0 ] || { echo "run_fuzzer.sh: no seeds in $seeds" >&2; exit 1; }
    command=("$fuzzer" "${options[@]}" "${inputs[@]}")
    ;;
  fuzz)
    command=("$fuzzer" "${options[@]}" -max_total_time="${KVTIER_FUZZ_SECONDS:-25}"
             -print_final_stats=1 "$work/corpus" "$seeds")
    ;;
  *)
    echo "run_fuzzer.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
if ! "${command[@]}" >"$log" 2>&1; then
  tail -n 80 "$log"
  echo "$(basename "$fuzzer"): failed; the log is $log, the input in $work"
  exit 1
fi
case $mode in
  seeds) echo "$(basename "$fuzzer"): ${#inputs[@]} seeds of $seeds passed" ;;
  fuzz) grep -E '^(Done [0-9]+ runs|stat::)' "$log" | sed "s|^|$(basename "$fuzzer"): |" ;;
esac
