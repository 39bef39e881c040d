#!/usr/bin/env bash
# Runs every benchmark of issue 5 and writes RESULTS.md, the raw results
# (JSON/CSV/text) and PNG plots, then checks the targets (PASS/MISS/FAIL).
#
#   tests/bench/run_all.sh            # full run (~15 min), tests/bench/results/
#   tests/bench/run_all.sh --smoke    # a few seconds each, small N (CI)
#
# Options:
#   --smoke          small and short (what CTest's bench_smoke runs)
#   --out DIR        where results go (default tests/bench/results)
#   --build-dir DIR  the CMake build tree (default build/)
#   --no-build       do not build the targets first (CTest has built them)
#   --load-only      only step 1 (GetToken vs Check vs the bare server, and
#                    the pinned rows): ~9 min, its tables, no RESULTS.md;
#                    into a temporary directory unless --out is given
#
# Steps: (1) load_generator against the real broker binary (one tenant, a
# cached token) with the Treezor simulator as upstream: cached GetToken vs
# Health/Check; (2) stampede_benchmark; (3) scale_benchmark (the broker
# binary with 10 000 tenants; 200 in smoke); (4) hostile_load_benchmark (a
# legitimate caller while hostile peers flood the broker binary; small floods
# in smoke); (5) client_benchmark, when the client library's target is built; then plots (gnuplot, installed from
# Debian if missing) and tests/bench/report.py (targets, RESULTS.md).
#
# Exit status: 1 if a functional target FAILs (stampede not exactly one
# upstream request, duplicate or failed renewals, in-flight bound exceeded,
# failed calls, a benchmark that did not finish, a failed legitimate call
# under a flood). Performance targets
# (throughput ratio, p99, RSS) are reported PASS/MISS and never fail the run:
# on a shared 2-core machine they are too noisy to gate CI on.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

mode=full
out=$here/results
build_dir=$root/build
build=1
load_only=0
out_given=0
while (($#)); do
  case $1 in
    --smoke) mode=smoke ;;
    --out) out=$2; out_given=1; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --no-build) build=0 ;;
    --load-only) load_only=1 ;;
    -h|--help) sed -n '2,29p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run_all.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# --load-only keeps the committed results: a temporary directory by default.
if ((load_only && !out_given)); then out=$(mktemp -d "${TMPDIR:-/tmp}/tzb-load-XXXXXX"); fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/*.json "$out"/*.csv "$out"/*.txt "$out"/*.png "$out"/RESULTS.md

if [[ $mode == smoke ]]; then
  load_args=(--channels=2 --concurrency=1,8 --round_duration=300ms --rounds=1
             --warmup=200ms)
  stampede_args=(--callers=1000 --rounds=1)
  scale_args=(--tenants=200 --token_lifetime=8s --lifetimes=1.5)
  hostile_args=(--phase=1s --connections=200 --watch_streams=300
                --watch_channels=6 --health_streams=300 --scope_sets=100
                --enforce=false)
  client_bench_args=(--benchmark_min_time=0.01)
else
  # 3 alternating rounds of 5 s per workload and level, as issue 13 measured:
  # 15 s per workload per level, so that one disturbed second moves a ratio
  # less (with 2 s rounds two runs of one binary differed by up to 15 %).
  load_args=(--channels=4 --concurrency=1,2,4,8,16,32,64,128
             --round_duration=5s --rounds=3 --warmup=2s)
  load_pinned_args=(--channels=1 --concurrency=1,2,4 --round_duration=5s
                    --rounds=3 --warmup=1s --paced=false)
  stampede_args=(--callers=1000 --rounds=5)
  scale_args=(--tenants=10000 --token_lifetime=60s --lifetimes=4)
  hostile_args=(--phase=10s --enforce=false)
  client_bench_args=(--benchmark_repetitions=3
                     --benchmark_report_aggregates_only=true)
fi

section() { printf '\n==== %s ====\n' "$*"; }

if ((build)); then
  section "build"
  targets=(load_generator noop_server stampede_benchmark scale_benchmark
           hostile_load_benchmark treezor-token-broker treezor-simulator)
  if cmake --build "$build_dir" --target help 2>/dev/null |
      grep -q '^client_benchmark\b\|[: ]client_benchmark$\|client_benchmark:'; then
    targets+=(client_benchmark)
  fi
  cmake --build "$build_dir" --target "${targets[@]}"
fi
bench_bin=$build_dir/tests/bench
broker_bin=$build_dir/server/treezor-token-broker
simulator_bin=$build_dir/tests/treezor-simulator
for b in "$bench_bin/load_generator" "$bench_bin/noop_server" "$bench_bin/stampede_benchmark" \
         "$bench_bin/scale_benchmark" "$bench_bin/hostile_load_benchmark" \
         "$broker_bin" "$simulator_bin"; do
  [[ -x $b ]] || { echo "run_all.sh: $b is not built" >&2; exit 1; }
done

# Everything started here is stopped by its own pid on exit.
work=$(mktemp -d "${TMPDIR:-/tmp}/tzb-bench-XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The machine the numbers come from.
{
  printf '{"mode": "%s", "nproc": %s, ' "$mode" "$(nproc)"
  printf '"cpu": "%s", ' "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf '"memory_mb": %s, ' "$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
  printf '"kernel": "%s", ' "$(uname -r)"
  printf '"loadavg_at_start": "%s", ' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '"date": "%s", ' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '"commit": "%s", ' "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  # Uncommitted changes to what is measured (server, client, protos).
  dirty=false
  [[ -n $(git -C "$root" status --porcelain -- server client proto 2>/dev/null) ]] && dirty=true
  printf '"uncommitted_changes": %s}\n' "$dirty"
} >"$out/machine.json"

# --- 1. Load: cached GetToken vs Health/Check on the real broker ---------
section "load_generator: GetToken vs Health/Check"
certs=$work/certs
"$root/scripts/dev-certs.sh" "$certs" >/dev/null
printf 'bench-client-secret\n' >"$work/client.secret"
sim_port=$(free_port)
"$simulator_bin" --listen_port="$sim_port" --cert="$certs/treezor-simulator.crt" \
  --key="$certs/treezor-simulator.key" --client_ca="$certs/treezor-ca.crt" \
  --client_id=1234 --client_secret_file="$work/client.secret" \
  --token_lifetime=3600s 2>"$work/simulator.log" &
pids+=($!)
broker_port=$(free_port)
cat >"$work/broker.json" <<EOF
{
  "listenAddress": "127.0.0.1:$broker_port",
  "serverTls": {"certFile": "$certs/broker.crt", "keyFile": "$certs/broker.key",
                "clientCaFile": "$certs/internal-ca.crt"},
  "tenants": [
    {"name": "bench", "baseUrl": "https://localhost:$sim_port", "clientId": "1234",
     "clientSecretFile": "$work/client.secret", "defaultScopes": ["read_write"],
     "upstreamTls": {"caFile": "$certs/treezor-ca.crt",
                     "certFile": "$certs/broker-to-treezor.crt",
                     "keyFile": "$certs/broker-to-treezor.key"}}
  ],
  "callers": [{"identity": "spiffe://demo/cli", "tenants": ["bench"]}]
}
EOF
# The broker writes one audit line per call: into a pipe, as under a
# container runtime, keeping only the end.
"$broker_bin" --config "$work/broker.json" 2> >(exec tail -n 200 >"$work/broker.log") &
broker_pid=$!
pids+=("$broker_pid")
# The third workload: a bare callback-API server with the same TLS material.
"$bench_bin/noop_server" --cert="$certs/broker.crt" --key="$certs/broker.key" \
  --client_ca="$certs/internal-ca.crt" >"$work/noop.out" 2>&1 &
noop_pid=$!
pids+=("$noop_pid")
noop_port=
for _ in $(seq 100); do
  noop_port=$(sed -n 's/^noop server listening on port \([0-9]*\)$/\1/p' "$work/noop.out")
  [[ -n $noop_port ]] && break
  sleep 0.1  # polling another process's output for its port
done
[[ -n $noop_port ]] || { echo "noop_server did not start: $(cat "$work/noop.out")" >&2; exit 1; }
load_common=(--target="127.0.0.1:$broker_port" --noop_target="127.0.0.1:$noop_port"
  --ca="$certs/internal-ca.crt" --cert="$certs/demo-client.crt"
  --key="$certs/demo-client.key" --tenant=bench --server_pid="$broker_pid")
load_rc=0
"$bench_bin/load_generator" "${load_common[@]}" \
  --json_out="$out/load.json" --csv_out="$out/load.csv" "${load_args[@]}" \
  | tee "$out/load.txt" || load_rc=$?
# The latency rows again with the servers on core 0 and the load generator on
# core 1, so that they do not take each other's core (2+ cores, full run).
if ((load_rc == 0)) && [[ $mode == full ]] && (($(nproc) >= 2)) &&
   command -v taskset >/dev/null; then
  section "load_generator pinned: servers on core 0, load generator on core 1"
  taskset -a -p -c 0 "$broker_pid" >/dev/null
  taskset -a -p -c 0 "$noop_pid" >/dev/null
  taskset -c 1 "$bench_bin/load_generator" "${load_common[@]}" \
    --json_out="$out/load_pinned.json" "${load_pinned_args[@]}" \
    | tee "$out/load_pinned.txt" || load_rc=$?
fi
if ((load_rc)); then
  echo "load_generator failed ($load_rc); broker log:" >&2
  tail -n 20 "$work/broker.log" >&2 || true
fi
kill -TERM "$broker_pid" "$noop_pid" 2>/dev/null || true
wait "$broker_pid" "$noop_pid" 2>/dev/null || true

if ((load_only)); then
  echo "run_all.sh: --load-only: results in $out (load*.txt, load*.json)"
  exit "$load_rc"
fi

# --- 2. Stampede ------------------------------------------------------------
section "stampede_benchmark"
"$bench_bin/stampede_benchmark" --json_out="$out/stampede.json" \
  "${stampede_args[@]}" 2>"$work/stampede.err" | tee "$out/stampede.txt" || true

# --- 3. Scale ---------------------------------------------------------------
section "scale_benchmark"
"$bench_bin/scale_benchmark" --broker_binary="$broker_bin" \
  --json_out="$out/scale.json" --csv_out="$out/renewals.csv" \
  "${scale_args[@]}" | tee "$out/scale.txt" || true

# --- 4. Hostile load --------------------------------------------------------
section "hostile_load_benchmark"
"$bench_bin/hostile_load_benchmark" --broker_binary="$broker_bin" \
  --json_out="$out/hostile.json" --csv_out="$out/hostile.csv" \
  --txt_out="$out/hostile.txt" "${hostile_args[@]}" \
  2>"$work/hostile.err" || true

# --- 5. The client library's cache-hit benchmark ----------------------------
client_bench=
for c in "$build_dir/tests/bench/client_benchmark" "$build_dir/tests/client_benchmark"; do
  [[ -x $c ]] && client_bench=$c && break
done
if [[ -n $client_bench ]]; then
  section "client_benchmark"
  "$client_bench" "${client_bench_args[@]}" --benchmark_out="$out/client_benchmark.json" \
    --benchmark_out_format=json 2>"$work/client_benchmark.err" \
    | tee "$out/client_benchmark.txt" || true
else
  echo "(client_benchmark is not built: skipped)"
fi

# --- Plots ------------------------------------------------------------------
section "plots"
if ! command -v gnuplot >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] &&
   command -v apt-get >/dev/null 2>&1; then
  echo "installing gnuplot-nox (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    gnuplot-nox >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends gnuplot-nox >/dev/null 2>&1; } || true
fi
if command -v gnuplot >/dev/null 2>&1; then
  if [[ -s $out/load.csv ]]; then
    gnuplot -e "csv='$out/load.csv'; png='$out/latency.png'" "$here/latency.gp" ||
      echo "latency plot failed" >&2
  fi
  if [[ -s $out/renewals.csv && -s $out/scale.json ]]; then
    read -r theory plot_title < <(/usr/bin/python3 - "$out/scale.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(round(s["theory_rate_per_s"], 2),
      f'{s["tenants"]} tenants, token lifetime {s["token_lifetime_s"]:g} s, '
      f'upstream bound {s["max_concurrent_requests"]}: requests to Treezor per second')
PY
    )
    gnuplot -e "csv='$out/renewals.csv'; png='$out/renewals.png'; theory=$theory; title='$plot_title'" \
      "$here/renewals.gp" || echo "renewals plot failed" >&2
  fi
  if [[ -s $out/hostile.csv ]]; then
    gnuplot -e "csv='$out/hostile.csv'; png='$out/hostile.png'; limit=256" \
      "$here/hostile.gp" || echo "hostile plot failed" >&2
  fi
else
  echo "gnuplot not available: no plots" >&2
fi

# --- Targets and RESULTS.md -------------------------------------------------
section "targets"
/usr/bin/python3 "$here/report.py" --dir "$out" --mode "$mode"
