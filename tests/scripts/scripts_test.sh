#!/usr/bin/env bash
# scripts/build, scripts/test and scripts/demo, run in a scratch copy against stand-ins for
# install-deps, cmake, ctest and the binaries (placed where the build puts the real ones):
# build/ is configured once, and afresh only when KVTIER_CMAKE_ARGS changes; scripts/build's
# arguments go to `cmake --build`, scripts/test's to ctest (the fuzzers in build/fuzz run
# only without arguments, or alone after --fuzz; the deploy tests in a phase of their own, or
# alone after --deploy), scripts/demo's to both its kvtier-generate
# runs, and the demo shows kvtier-local's stdout lines, not its log.
#
#   scripts_test.sh SOURCE_DIR KVTIER_LOCAL KVTIER_GENERATE   (binaries relative to build/)
set -euo pipefail
source_dir=$1
local_bin=$2
generate_bin=$3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/repo/scripts" "$work/bin"
cp "$source_dir"/scripts/{build,test,demo} "$work/repo/scripts/"
export CALLS="$work/calls" PATH="$work/bin:$PATH"
: >"$CALLS"

stub() {  # stub PATH BODY: an executable that records its call, then runs BODY
  mkdir -p "$(dirname "$1")"
  printf '#!/usr/bin/env bash\necho "%s $*" >>"$CALLS"\n%s\n' "$(basename "$1")" "$2" >"$1"
  chmod +x "$1"
}
stub "$work/repo/scripts/install-deps" ""
stub "$work/bin/cmake" '
if [ "$1" = --fresh ]; then
  while [ "$1" != -B ]; do shift; done
  mkdir -p "$2" && touch "$2/CMakeCache.txt"
fi'
stub "$work/bin/ctest" ""
stub "$work/repo/build/$local_bin" '
for arg; do
  case $arg in --address_file=*) echo 127.0.0.1:50051 >"${arg#--address_file=}" ;; esac
done
echo "kvtier-local: coordinator 127.0.0.1:50051, model toy"
echo "2026-12-01T10:12:36.123456Z kvtier-local: coordinator serving on 127.0.0.1:50051" >&2
trap "exit 0" TERM
while :; do sleep 0.05; done'
stub "$work/repo/build/$generate_bin" 'echo "kvtier-generate ran"'
cd "$work/repo"

failures=0
# check NAME EXPECTED...: the calls since the last check are exactly EXPECTED.
check() {
  local name=$1
  shift
  if ! diff <(printf '%s\n' "$@") "$CALLS" >"$work/diff"; then
    echo "FAIL: $name"
    cat "$work/diff"
    failures=$((failures + 1))
  fi
  : >"$CALLS"
}

configure="cmake --fresh -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release"
ctest="ctest --test-dir build --output-on-failure --no-tests=error --parallel $(nproc) --timeout 600"
configure_fuzz="cmake --fresh -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release \
-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DKVTIER_FUZZ=ON -DKVTIER_CUDA=OFF \
-DKVTIER_BUILD_TESTS=OFF -DKVTIER_BUILD_BENCHMARKS=OFF"
ctest_fuzz="ctest --test-dir build/fuzz --verbose --no-tests=error --parallel $(nproc)"

unset KVTIER_CMAKE_ARGS KVTIER_BUILD_DIR KVTIER_FUZZ_SECONDS
scripts/test -R Prefix
check "first run configures, ctest gets the arguments" \
  "install-deps " "$configure" "cmake --build build" "$ctest -R Prefix"

scripts/test -j1 --repeat until-fail:3
check "same options: no configure" \
  "install-deps " "cmake --build build" "$ctest -j1 --repeat until-fail:3"

scripts/test >/dev/null
check "no arguments: the suite but for the deploy tests, the fuzzers (built in build/fuzz), then the deploy tests" \
  "install-deps " "cmake --build build" "$ctest -LE deploy" \
  "install-deps " "$configure_fuzz" "cmake --build build/fuzz --target kvtier_fuzzers" \
  "$ctest_fuzz --timeout 325" "$ctest -L deploy"

scripts/test --deploy -R Helm
check "--deploy: the deploy tests alone, with the other arguments" \
  "install-deps " "cmake --build build" "$ctest -L deploy -R Helm"

KVTIER_FUZZ_SECONDS=60 scripts/test --fuzz -R Coordinator
check "--fuzz: the fuzzers alone, with the other arguments" \
  "install-deps " "cmake --build build/fuzz --target kvtier_fuzzers" \
  "$ctest_fuzz --timeout 360 -R Coordinator"

KVTIER_CMAKE_ARGS="-DKVTIER_CUDA=OFF -DKVTIER_BUILD_BENCHMARKS=OFF" scripts/test -R Tier
check "new KVTIER_CMAKE_ARGS: configured afresh with them" \
  "install-deps " "$configure -DKVTIER_CUDA=OFF -DKVTIER_BUILD_BENCHMARKS=OFF" \
  "cmake --build build" "$ctest -R Tier"

KVTIER_CMAKE_ARGS="-DKVTIER_CUDA=OFF -DKVTIER_BUILD_BENCHMARKS=OFF" scripts/build --target x
check "scripts/build's arguments go to cmake --build" \
  "install-deps " "cmake --build build --target x"

scripts/build
check "KVTIER_CMAKE_ARGS gone: configured afresh without them" \
  "install-deps " "$configure" "cmake --build build"

output=$(KVTIER_CMAKE_ARGS=-DKVTIER_CUDA=OFF scripts/demo --modes=tier --tokens=5) || {
  echo "FAIL: scripts/demo exited $?: $output"
  failures=$((failures + 1))
}
sed -i 's/--address_file=[^ ]*/--address_file=FILE/' "$CALLS"
check "the demo builds with KVTIER_CMAKE_ARGS and passes its arguments to both kvtier-generate runs" \
  "install-deps " "$configure -DKVTIER_CUDA=OFF" "cmake --build build" \
  "kvtier-local --shards=2 --port=0 --address_file=FILE" \
  "kvtier-generate --coordinator=127.0.0.1:50051 --modes=tier --tokens=5" \
  "kvtier-generate --coordinator=127.0.0.1:50051 --scenario=turns --modes=tier --tokens=5"
expected_output="kvtier-local: coordinator 127.0.0.1:50051, model toy
kvtier-generate ran

kvtier-generate ran"
if [ "$output" != "$expected_output" ]; then
  echo "FAIL: the demo's output"
  diff <(echo "$expected_output") <(echo "$output") || true
  failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] && echo "scripts: all checks passed"
exit "$failures"
