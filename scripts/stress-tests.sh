#!/usr/bin/env bash
# Hunts flaky tests: runs the CTest suite of a build tree over and over, with
# more parallel tests than cores and, optionally, a CPU hog beside it, so that
# any test depending on timing luck shows up. Run it before big changes.
#
# Usage: scripts/stress-tests.sh [-b BUILD_DIR] [-n ROUNDS] [-j JOBS] [-H HOGS]
#                                [-L LABEL] [-E REGEX]
#   -b  build tree to test (default build; build-asan and build-tsan work too)
#   -n  rounds of the whole suite (default 10); each test runs once per round
#   -j  tests in parallel (default 2 x cores)
#   -H  CPU-burning processes beside the tests (default: number of cores)
#   -L  only tests with this CTest label (e.g. integration, concurrency)
#   -E  exclude tests matching this regex (default: the benchmarks)
# Prints one line per round and, at the end, "<passed>/<rounds> rounds
# passed"; exits non-zero if any round failed (its output is kept in
# BUILD_DIR/stress-logs/round-N.log).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build=build rounds=10 jobs=$(($(nproc) * 2)) hogs=$(nproc) label="" exclude="bench"
while getopts "b:n:j:H:L:E:h" opt; do
  case $opt in
    b) build=$OPTARG ;;
    n) rounds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    H) hogs=$OPTARG ;;
    L) label=$OPTARG ;;
    E) exclude=$OPTARG ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
  esac
done
[[ -f $build/CTestTestfile.cmake ]] ||
  { echo "stress-tests: $build is not a configured build tree" >&2; exit 2; }

hog_pids=()
stop_hogs() { ((${#hog_pids[@]})) && kill "${hog_pids[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap stop_hogs EXIT
for ((i = 0; i < hogs; i++)); do
  (while :; do :; done) &
  hog_pids+=($!)
done

# The sanitizer builds need the same runtime options as scripts/test.sh.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/sanitizers/tsan.supp"

args=(--test-dir "$build" --output-on-failure --timeout 600 -j "$jobs")
[[ -n $label ]] && args+=(-L "$label")
[[ -n $exclude ]] && args+=(-E "$exclude")
logs=$build/stress-logs
mkdir -p "$logs"
passed=0
for ((round = 1; round <= rounds; round++)); do
  start=$SECONDS
  if ctest "${args[@]}" >"$logs/round-$round.log" 2>&1; then
    passed=$((passed + 1))
    printf 'round %d/%d: passed (%ds)\n' "$round" "$rounds" $((SECONDS - start))
    rm -f "$logs/round-$round.log"
  else
    printf 'round %d/%d: FAILED (%ds): %s\n' "$round" "$rounds" $((SECONDS - start)) \
      "$(grep -E '^\s+[0-9]+ - ' "$logs/round-$round.log" | tr -s ' ' | paste -sd, -)"
  fi
done
echo "$passed/$rounds rounds passed (build $build, -j $jobs, $hogs CPU hogs)"
((passed == rounds))
