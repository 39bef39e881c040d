#!/usr/bin/env bash
# Profiles the broker's cached GetToken path with valgrind's callgrind: the
# real broker binary (RelWithDebInfo) against the Treezor simulator, driven by
# load_generator with one call in flight, then prints callgrind_annotate's top
# functions, inclusive and self, per GetToken call. Compare two trees (before
# and after a change) by running it in each. See tests/bench/README.md.
#
# Usage: tests/bench/profile.sh [--build-dir DIR] [--calls N] [--out DIR]
#                               [--whole]
#   default build/, 2000 calls, output in a temporary directory (printed).
#   --whole: instead, the whole broker's instructions (every thread: gRPC,
#   TLS, the log writer) per cached GetToken and per Health/Check, each
#   workload alone: profiled at N and 3N calls, (I(3N) - I(N)) / 2N, so that
#   start-up and the first fetch cancel out. Four profiled runs.
# Needs valgrind (Debian package `valgrind`; installed if missing and root).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build_dir=$root/build
calls=2000
out=
whole=0
while (($#)); do
  case $1 in
    --build-dir) build_dir=$(cd "$2" && pwd); shift ;;
    --calls) calls=$2; shift ;;
    --out) out=$2; shift ;;
    --whole) whole=1 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "profile.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v valgrind >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
  else
    echo "profile.sh: valgrind is not installed" >&2; exit 1
  fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/tzb-profile-XXXXXX")
out=${out:-$work}
mkdir -p "$out"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

certs=$work/certs
"$root/scripts/dev-certs.sh" "$certs" >/dev/null
(umask 077; printf 'profile-client-secret\n' >"$work/client.secret")
"$build_dir/tests/treezor-simulator" --listen_port=0 \
  --cert="$certs/treezor-simulator.crt" --key="$certs/treezor-simulator.key" \
  --client_ca="$certs/treezor-ca.crt" --client_id=1234 \
  --client_secret_file="$work/client.secret" --token_lifetime=3600s \
  2>"$work/simulator.log" &
pids+=($!)
logged() {  # file msg field: the field's value on the first such log line
  local v
  for _ in $(seq 600); do
    v=$(sed -n "s/.*\"msg\":\"$2\".*\"$3\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$1" | head -n1)
    [[ -n $v ]] && { echo "$v"; return 0; }
    sleep 0.1  # polling another process's log
  done
  echo "profile.sh: no \"$2\" in $1" >&2; cat "$1" >&2; return 1
}
sim_url=$(logged "$work/simulator.log" "treezor simulator listening" url)
cat >"$work/broker.json" <<EOF
{
  "listenAddress": "127.0.0.1:0",
  "serverTls": {"certFile": "$certs/broker.crt", "keyFile": "$certs/broker.key",
                "clientCaFile": "$certs/internal-ca.crt"},
  "tenants": [
    {"name": "bench", "baseUrl": "https://localhost:${sim_url##*:}", "clientId": "1234",
     "clientSecretFile": "$work/client.secret", "defaultScopes": ["read_write"],
     "upstreamTls": {"caFile": "$certs/treezor-ca.crt",
                     "certFile": "$certs/broker-to-treezor.crt",
                     "keyFile": "$certs/broker-to-treezor.key"}}
  ],
  "callers": [{"identity": "spiffe://demo/cli", "tenants": ["bench"]}]
}
EOF
# Instrumentation starts with the first GetToken (--toggle-collect would
# need the mangled name; instead the counts are divided by the calls made
# after a warm-up that is profiled too, and the warm-up is small).
# profile_broker FILE CALLS [WORKLOAD]: the broker under callgrind, driven
# by load_generator (CALLS of each workload, or of WORKLOAD alone).
profile_broker() {
  local file=$1 n=$2 only=${3:-}
  : >"$work/broker.log"  # not the previous run's port
  valgrind --tool=callgrind --callgrind-out-file="$file" \
    "$build_dir/server/treezor-token-broker" --config "$work/broker.json" \
    2>"$work/broker.log" &
  local broker_pid=$!
  pids+=("$broker_pid")
  local port
  port=$(logged "$work/broker.log" "broker started" port)
  "$build_dir/tests/bench/load_generator" --target="127.0.0.1:$port" \
    --ca="$certs/internal-ca.crt" --cert="$certs/demo-client.crt" \
    --key="$certs/demo-client.key" --tenant=bench --channels=1 --concurrency=1 \
    --rounds=1 --round_duration=10m --max_calls_per_round="$n" \
    --warmup=0s --paced=false --call_timeout=60s ${only:+--only="$only"} \
    >"$work/load.txt"
  kill -TERM "$broker_pid"
  wait "$broker_pid" || true
  pids=("${pids[@]/$broker_pid}")
}
program_total() {
  callgrind_annotate "$1" | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}
if ((whole)); then
  declare -A per_call
  for w in GetToken Check; do
    profile_broker "$out/callgrind.$w.1x.out" "$calls" "$w"
    profile_broker "$out/callgrind.$w.3x.out" "$((3 * calls))" "$w"
    per_call[$w]=$((($(program_total "$out/callgrind.$w.3x.out") -
                     $(program_total "$out/callgrind.$w.1x.out")) / (2 * calls)))
  done
  {
    echo "callgrind: the whole broker, each workload alone, one in flight; instructions per call"
    echo "  ((3N calls) - (N calls)) / 2N, N = $calls"
    echo "GetToken ${per_call[GetToken]}"
    echo "Check    ${per_call[Check]}"
    awk -v g="${per_call[GetToken]}" -v c="${per_call[Check]}" \
      'BEGIN { printf "GetToken - Check %d, GetToken / Check %.3f\n", g - c, g / c }'
  } | tee "$out/whole.txt"
  echo "profile.sh: results in $out (callgrind.*.out, whole.txt)"
  exit 0
fi
profile_broker "$out/callgrind.out" "$calls"
# load_generator made $calls GetToken and $calls Check calls (plus one each
# to check the target): divide by 2*calls for a per-call cost of the two.
total=$(program_total "$out/callgrind.out")
{
  echo "callgrind: broker, $calls GetToken + $calls Health/Check calls, one in flight"
  echo "instructions in the whole run: $total"
  echo
  echo "--- top 25, inclusive ---"
  callgrind_annotate --inclusive=yes "$out/callgrind.out" | sed -n '/Ir .*file:function/,$p' | sed -n '1,30p'
  echo
  echo "--- top 25, self ---"
  callgrind_annotate "$out/callgrind.out" | sed -n '/Ir .*file:function/,$p' | sed -n '1,30p'
} | tee "$out/profile.txt"
echo "profile.sh: results in $out (callgrind.out, profile.txt)"
