#!/usr/bin/env bash
# Builds and runs the whole test suite through CTest, installing the Debian
# packages it needs first (idempotent):
#   1. regular build (build/):                every test, then the offline
#      Helm chart / Dockerfile checks (deploy/ci/check-chart.sh)
#   2. AddressSanitizer + UBSan, clang (build-asan/): every test, then each
#      fuzz target for 20 s (tests/fuzz/run.sh)
#   3. ThreadSanitizer, clang (build-tsan/):   the concurrency tests
#      (ctest -L concurrency), also compiled with -Werror=thread-safety
# Usage: scripts/test.sh [--quick]     --quick runs step 1 only.
# Exits non-zero if anything fails to build or any test fails.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
quick=0
[[ ${1:-} == --quick ]] && quick=1

"$root/scripts/install-deps.sh" --test

jobs=$(nproc)
ctest_args=(--output-on-failure --timeout 600 -j "$jobs")

section() { printf '\n==== %s ====\n' "$*"; }

section "regular build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
ctest --test-dir build "${ctest_args[@]}"

section "Helm chart and container image checks (offline)"
TZB_BROKER_BIN=$root/build/server/treezor-token-broker "$root/deploy/ci/check-chart.sh"

if ((quick)); then exit 0; fi

section "AddressSanitizer + UndefinedBehaviorSanitizer"
# clang, so that this one build also carries the fuzz targets:
# -fsanitize=fuzzer-no-link gives every library coverage instrumentation,
# TZB_FUZZ=ON adds the libFuzzer executables (tests/fuzz/CMakeLists.txt).
# A build-asan configured without TZB_FUZZ (an older gcc one) is started afresh.
if [[ -f build-asan/CMakeCache.txt ]] &&
   ! grep -q '^TZB_FUZZ:BOOL=ON' build-asan/CMakeCache.txt; then
  rm -rf build-asan
fi
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_COMPILER=clang++ -DTZB_FUZZ=ON \
  -DCMAKE_CXX_FLAGS="-O1 -fsanitize=address,undefined -fsanitize=fuzzer-no-link -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan "${ctest_args[@]}"

# Each libFuzzer target of build-asan for 20 s (about 1.5 min in all); stops
# at the first finding and says how to keep the input as a regression input.
# See tests/fuzz/README.md.
section "Fuzzing (libFuzzer, bounded)"
"$root/tests/fuzz/run.sh" build-asan 20

section "ThreadSanitizer (concurrency tests)"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_COMPILER=clang++ -DTZB_CORE_TESTS_ONLY=ON \
  -DCMAKE_CXX_FLAGS="-O1 -g -fsanitize=thread -Werror=thread-safety-analysis" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build build-tsan --target sync_test token_cache_test logging_test renewal_scheduler_test \
  connection_admission_test hit_snapshot_test cached_token_test
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/sanitizers/tsan.supp" \
  ctest --test-dir build-tsan -L concurrency "${ctest_args[@]}"

# ---- container image and proto contract (deploy/ci/; see deploy/README.md "CI checks") ----
# After the sanitizer passes, skipped by --quick: the proto contract (buf lint,
# buf breaking against proto/baseline/), then the image built for real from
# deploy/docker/Dockerfile with podman, smoke-tested and run under
# `podman kube play` from the chart (about 7 min on a fresh 2-core machine,
# under a minute when the base images and layers are cached). A missing tool
# fails them; it never skips them.
section "proto contract: buf lint and buf breaking (deploy/ci/check-proto.sh)"
"$root/deploy/ci/check-proto.sh"
section "container image: build, smoke test, podman kube play (deploy/ci/check-image.sh)"
TZB_SIMULATOR_BIN=$root/build/tests/treezor-simulator "$root/deploy/ci/check-image.sh"
# ---- end: container image and proto contract ----
