#!/usr/bin/env bash
# Run every test of the project, as CI does (.ci/run calls exactly this).
#
# Installs the Debian packages it needs, then builds and runs:
#   1. the unit tests (ctest) in an optimized build with debug info;
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the multi-threaded unit tests (ctest label "threads") under ThreadSanitizer;
#   4. the integration tests (pytest under /usr/bin/python3) against the optimized build;
#   5. the uds-indexd and udsctl integration tests again against the ASan build (a leak fails
#      the exit status of the daemon or of udsctl);
#   6. every libFuzzer target (tests/fuzz/, built with clang under ASan + UBSan) for
#      DD_FUZZ_SECONDS (default 30) seconds each, from a scratch copy of its seed corpus
#      tests/fuzz/corpus/<target without "fuzz-">/ (the inputs it finds stay out of git); a crash,
#      leak or hang fails the run, and the input is kept in build/ci-fuzz/runs/<target>/.
# Any failure stops the script with a non-zero exit status.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
scripts/install-deps.sh

jobs=$(nproc)
export DD_LOG_LEVEL=${DD_LOG_LEVEL:-error}

build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DBUILD_BENCHMARKS=ON "$@" >/dev/null
  ninja -C "$dir" >/dev/null
}

echo "== unit tests (RelWithDebInfo)"
build build/ci-release -DCMAKE_BUILD_TYPE=RelWithDebInfo
ctest --test-dir build/ci-release --output-on-failure -j "$jobs"

echo "== unit tests under ASan + UBSan"
build build/ci-asan -DCMAKE_BUILD_TYPE=Debug -DENABLE_SANITIZERS=ON -DBUILD_BENCHMARKS=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/ci-asan --output-on-failure -j "$jobs"

echo "== threaded unit tests under TSan"
build build/ci-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENABLE_TSAN=ON -DBUILD_BENCHMARKS=OFF
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build/ci-tsan -L threads --output-on-failure -j "$jobs"

echo "== integration tests (pytest)"
DD_BUILD_DIR="$top/build/ci-release" /usr/bin/python3 -m pytest -q tests/integration

echo "== uds-indexd integration tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  DD_BUILD_DIR="$top/build/ci-asan" /usr/bin/python3 -m pytest -q tests/integration/test_indexd*.py \
  tests/integration/test_udsctl.py -k "not shards"

echo "== fuzz targets under ASan + UBSan"
fuzz_seconds=${DD_FUZZ_SECONDS:-30}
cmake -S . -B build/ci-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DBUILD_FUZZERS=ON -DENABLE_SANITIZERS=ON -DBUILD_TESTING=OFF -DBUILD_BENCHMARKS=OFF >/dev/null
ninja -C build/ci-fuzz fuzzers >/dev/null
# tests/fuzz/CMakeLists.txt lists every target it builds in fuzzers.txt.
mapfile -t fuzzers <build/ci-fuzz/tests/fuzz/fuzzers.txt
for fuzzer in "${fuzzers[@]}"; do
  name=$(basename "$fuzzer")
  run="$top/build/ci-fuzz/runs/$name"
  seeds="tests/fuzz/corpus/${name#fuzz-}"
  rm -rf "$run"
  mkdir -p "$run/corpus"
  if [ -d "$seeds" ]; then
    cp -R "$seeds/." "$run/corpus/"
  fi
  # -close_fd_mask=2 drops what the code under test logs; libFuzzer's and the sanitizers'
  # reports still reach the log.
  if ! UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$fuzzer" \
    -max_total_time="$fuzz_seconds" -timeout=10 -close_fd_mask=2 -artifact_prefix="$run/" \
    "$run/corpus" >"$run/log" 2>&1; then
    tail -n 80 "$run/log"
    echo "$name failed: the input and the log are in $run" >&2
    exit 1
  fi
  echo "$name: $(grep -m1 '^Done' "$run/log")"
done
