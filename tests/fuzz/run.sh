#!/usr/bin/env bash
# Runs every libFuzzer target built in BUILD_DIR for a bounded time, one after
# the other, and stops at the first crash (or broken invariant, leak, timeout,
# out-of-memory), saying where the input is and how to keep it as a
# regression input. See tests/fuzz/README.md.
#
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET]     (default 20)
#
# BUILD_DIR must be configured with clang and -DTZB_FUZZ=ON (scripts/test.sh's
# build-asan is). Each target starts from a writable copy of its committed
# corpus and regression inputs in BUILD_DIR/fuzz-run/<target>/corpus, which
# keeps what earlier runs found; nothing is written to the source tree.
# Exits 0 when every target ran its time without a finding, 1 on a finding,
# 2 on a usage or set-up error.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# < 1 || $# > 2)); then
  echo "usage: $0 BUILD_DIR [SECONDS_PER_TARGET]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
seconds=${2:-20}
list=$build/tests/fuzz/fuzz_targets.txt
if [[ ! -f $list ]]; then
  echo "run.sh: no $list: configure $1 with clang and -DTZB_FUZZ=ON," \
    "and build it" >&2
  exit 2
fi

work=$build/fuzz-run
# The config target's sandbox (and anything a crash leaves behind) goes here.
export TEST_TMPDIR=$work/tmp
mkdir -p "$TEST_TMPDIR"
# As for the AddressSanitizer ctest pass; libFuzzer handles the crash itself
# (no abort_on_error), and reports leaks found after an input as a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$src/../sanitizers/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

printf '%-16s %7s %9s %6s %6s %8s %7s\n' target seconds runs exec/s cov ft corpus
start_all=$SECONDS
while read -r name max_len exe; do
  [[ -n $name ]] || continue
  dir=$work/$name
  mkdir -p "$dir/corpus" "$dir/artifacts"
  # cp -n: keep the discoveries of earlier runs.
  for seeds in "$src/corpus/$name" "$src/regressions/$name"; do
    if [[ -d $seeds ]]; then
      find "$seeds" -maxdepth 1 -type f ! -name '.*' \
        -exec cp -n -t "$dir/corpus" {} +
    fi
  done
  options=(-max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$max_len"
           -timeout=10 -print_final_stats=1 -artifact_prefix="$dir/artifacts/")
  if [[ -f $src/$name.dict ]]; then options+=(-dict="$src/$name.dict"); fi
  rm -f "$dir/artifacts/"*
  started=$SECONDS
  status=0
  "$exe" "${options[@]}" "$dir/corpus" >"$dir/fuzz.log" 2>&1 || status=$?
  if ((status != 0)); then
    artifact=$(find "$dir/artifacts" -type f | head -n 1)
    echo
    tail -n 60 "$dir/fuzz.log"
    if [[ -z $artifact ]]; then
      echo "run.sh: $name exited with status $status without writing an" \
        "input (a set-up problem?): see $dir/fuzz.log" >&2
      exit 2
    fi
    cat >&2 <<EOF

==== fuzz target "$name" found a problem ====
Input:      $artifact
Full log:   $dir/fuzz.log
Reproduce:  $exe $artifact
Replay without libFuzzer (any build, e.g. the regular one):
            build/tests/fuzz/${name}_fuzz_replay $artifact
Keep it as a regression input, so that every later run re-checks it:
            cp $artifact $src/regressions/$name/<what-it-breaks>
            git add tests/fuzz/regressions/$name && git commit
(then fix the code until ctest -L fuzz-regression passes).
EOF
    exit 1
  fi
  # "#1234 DONE cov: 567 ft: 890 corp: 12/3456b lim: ... exec/s: 78 rss: ..."
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/fuzz.log" | tail -n 1)
  field() { sed -nE "s|.* $1:? ([^ ]+).*|\\1|p" <<<"$done_line"; }
  printf '%-16s %7s %9s %6s %6s %8s %7s\n' "$name" $((SECONDS - started)) \
    "$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$done_line")" "$(field exec/s)" \
    "$(field cov)" "$(field ft)" "$(field corp)"
done <"$list"
echo "fuzz: every target ran ${seconds}s without a finding" \
  "($((SECONDS - start_all))s in all; logs and corpora in $work)"
