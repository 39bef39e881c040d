#!/usr/bin/env bash
# End-to-end test of the real binaries, driven by a gRPC client nobody here
# wrote: `buf curl` (through server reflection only — no proto files), the
# same calls the README's "Debugging with grpcurl" section gives. Also checks
# the process contract: --check-config exit codes, core dumps disabled unless
# --allow-core-dumps, a port in use is fatal, SIGTERM exits 0, and no secret
# or token reaches the logs.
#
# Usage: broker_process_test.sh BROKER_BINARY SIMULATOR_BINARY
set -euo pipefail
broker_bin=$1
simulator_bin=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
buf=(npx -y @bufbuild/buf@1.75.0)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# Waits for a process-level condition: bounded polling is the only way to
# see another process become ready.
wait_for() {  # description command...
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "timed out waiting for $what"
}
# Every server binds port 0 and the test reads the port it got from its log:
# a port picked beforehand (bind, close, pass on) can be taken by a test
# running beside this one before the server binds it.
logged_field() {  # log msg field -> the field's value on the first such line
  sed -n "s/.*\"msg\":\"$2\".*\"$3\":\"\([^\"]*\)\".*/\1/p" "$1" | head -n1
}

"$root/scripts/dev-certs.sh" "$work/certs" >/dev/null
c=$work/certs
secret="process-test-secret-$RANDOM$RANDOM"
printf '%s\n' "$secret" >"$work/secret"
# The simulator first: the config names its port.
"$simulator_bin" --listen_port 0 --cert "$c/treezor-simulator.crt" \
  --key "$c/treezor-simulator.key" --client_ca "$c/treezor-ca.crt" \
  --client_id 1234 --client_secret_file "$work/secret" 2>"$work/simulator.log" &
pids+=($!)
wait_for "the simulator's port" grep -q '"msg":"treezor simulator listening"' "$work/simulator.log"
treezor_port=$(logged_field "$work/simulator.log" "treezor simulator listening" url)
treezor_port=${treezor_port##*:}
[[ $treezor_port =~ ^[0-9]+$ ]] || fail "no simulator port in its log: $(cat "$work/simulator.log")"

cat >"$work/broker.json" <<JSON
{
  "listenAddress": "127.0.0.1:0",
  "healthListenAddress": "127.0.0.1:0",
  "serverTls": {"certFile": "$c/broker.crt", "keyFile": "$c/broker.key",
                "clientCaFile": "$c/internal-ca.crt"},
  "tenants": [{
    "name": "demo", "baseUrl": "https://127.0.0.1:$treezor_port", "clientId": "1234",
    "clientSecretFile": "$work/secret", "defaultScopes": ["read_write"],
    "upstreamTls": {"caFile": "$c/treezor-ca.crt", "certFile": "$c/broker-to-treezor.crt",
                    "keyFile": "$c/broker-to-treezor.key"}
  }],
  "callers": [{"identity": "spiffe://demo/cli", "tenants": ["demo"]}],
  "shutdownGracePeriod": "3s"
}
JSON

# --check-config: 0 for a good file, non-zero naming the field for a bad one.
"$broker_bin" --check-config "$work/broker.json" >/dev/null || fail "--check-config rejected a valid config"
sed 's/"clientId"/"clientIdd"/' "$work/broker.json" >"$work/bad.json"
if "$broker_bin" --check-config "$work/bad.json" 2>"$work/bad.err"; then fail "--check-config accepted an unknown field"; fi
grep -q 'tenants\[0\]' "$work/bad.err" || fail "--check-config error does not name the field: $(cat "$work/bad.err")"
grep -q 'clientIdd' "$work/bad.err" || fail "--check-config error does not name the field: $(cat "$work/bad.err")"
pass "--check-config"

"$broker_bin" --config "$work/broker.json" 2>"$work/broker.log" &
broker_pid=$!
pids+=($broker_pid)
wait_for "the broker's ports" grep -q '"msg":"broker started"' "$work/broker.log"
port=$(logged_field "$work/broker.log" "broker started" port)
health_port=$(logged_field "$work/broker.log" "broker started" health_port)
[[ $port =~ ^[1-9][0-9]*$ && $health_port =~ ^[1-9][0-9]*$ ]] ||
  fail "no ports in the broker's start line: $(cat "$work/broker.log")"

# Core dumps: off by default (RLIMIT_CORE 0, soft and hard; non-dumpable),
# whatever limit the broker was started with.
core_limit() {  # pid -> "soft hard" of "Max core file size"
  sed -n 's/^Max core file size *\([^ ]*\) *\([^ ]*\).*/\1 \2/p' "/proc/$1/limits"
}
[[ $(core_limit "$broker_pid") == "0 0" ]] ||
  fail "core dumps not disabled: Max core file size $(core_limit "$broker_pid")"
grep -q '"msg":"process hygiene","core_dumps":"disabled","core_dumps_possible":"0"' "$work/broker.log" ||
  fail "no 'core dumps disabled' line: $(grep hygiene "$work/broker.log")"
pass "core dumps disabled by default"

# --allow-core-dumps leaves the limit it was started with, whatever that is,
# and the process dumpable. The launching shell tries to raise its soft limit
# to the hard one and records what it really got: some sandboxes (CI's among
# them) refuse or ignore the raise, and the contract is "unchanged", not
# "unlimited". Under AddressSanitizer the sanitizer's own runtime sets the
# soft limit to 0 before main() (its disable_coredump option, on by default
# on 64-bit): that run tells it not to, since it is the broker under test.
(ulimit -S -c "$(ulimit -H -c)" 2>"$work/ulimit.err" || true
 core_limit "$BASHPID" >"$work/launched_limit"
 export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}disable_coredump=0"
 exec "$broker_bin" --allow-core-dumps --config "$work/broker.json") \
  2>"$work/allowed.log" &
allowed_pid=$!
pids+=($allowed_pid)
wait_for "the broker with --allow-core-dumps" grep -q '"msg":"broker started"' "$work/allowed.log"
launched=$(cat "$work/launched_limit")
[[ -n $launched && $(core_limit "$allowed_pid") == "$launched" ]] ||
  fail "--allow-core-dumps: Max core file size $(core_limit "$allowed_pid"), started with '$launched' ($(cat "$work/ulimit.err"))"
possible=1
[[ ${launched%% *} == 0 ]] && possible=0
grep -q "\"core_dumps\":\"allowed (--allow-core-dumps)\",\"core_dumps_possible\":\"$possible\"" "$work/allowed.log" ||
  fail "--allow-core-dumps (started with core limit '$launched'): $(grep hygiene "$work/allowed.log")"
kill -TERM "$allowed_pid"
wait "$allowed_pid" || fail "the broker with --allow-core-dumps exited $? on SIGTERM"
pass "--allow-core-dumps keeps the core limit it was started with ($launched) and logs core_dumps_possible=$possible"
help=$("$broker_bin" --help 2>&1 || true)
grep -q 'allow-core-dumps' <<<"$help" || fail "--help does not document --allow-core-dumps"

# The plaintext probe port serves health Check only, without reflection: the
# client takes the schema from grpc-proto's health.proto.
probe=(--protocol grpc --http2-prior-knowledge
       --schema "${TZB_GRPC_PROTO_DIR:-/usr/share/grpc-proto}/grpc/health/v1/health.proto")
tls=(--protocol grpc --cacert "$c/internal-ca.crt" --cert "$c/demo-client.crt" --key "$c/demo-client.key")
url=https://127.0.0.1:$port
wait_for "the broker's health port" "${buf[@]}" curl "${probe[@]}" \
  "http://127.0.0.1:$health_port/grpc.health.v1.Health/Check"

# README: list services (reflection).
services=$("${buf[@]}" curl "${tls[@]}" --list-services "$url")
for s in treezor.broker.v1.TokenService grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection; do
  grep -qx "$s" <<<"$services" || fail "reflection does not list $s: $services"
done
pass "list services via reflection"

# README: describe TokenService (its methods).
methods=$("${buf[@]}" curl "${tls[@]}" --list-methods "$url")
grep -q "treezor.broker.v1.TokenService/GetToken" <<<"$methods" || fail "GetToken not described: $methods"
grep -q "treezor.broker.v1.TokenService/WatchToken" <<<"$methods" || fail "WatchToken not described: $methods"
pass "describe TokenService"

# README: GetToken.
answer=$("${buf[@]}" curl "${tls[@]}" -d '{"tenant":"demo","scopes":["read_all","admin"]}' \
  "$url/treezor.broker.v1.TokenService/GetToken")
grep -q '"tokenType": "Bearer"' <<<"$answer" || fail "GetToken answer: $answer"
grep -q '"accessToken": "eyJ' <<<"$answer" || fail "GetToken answer has no JWT: $answer"
grep -q '"admin"' <<<"$answer" && grep -q '"read_all"' <<<"$answer" || fail "scopes missing: $answer"
token=$(sed -n 's/.*"accessToken": "\([^"]*\)".*/\1/p' <<<"$answer")
pass "GetToken"

# README: health check, over mTLS and on the plaintext probe port.
health=$("${buf[@]}" curl "${tls[@]}" "$url/grpc.health.v1.Health/Check")
grep -q '"status": "SERVING"' <<<"$health" || fail "health over mTLS: $health"
health=$("${buf[@]}" curl "${probe[@]}" \
  "http://127.0.0.1:$health_port/grpc.health.v1.Health/Check")
grep -q '"status": "SERVING"' <<<"$health" || fail "plaintext health: $health"
pass "health checks"

# SIGHUP reloads the config: a tenant added to the file starts serving.
sed -e 's/"tenants": \["demo"\]/"tenants": ["demo", "second"]/' \
    -e 's/"tenants": \[{/"tenants": [{"name": "second", "baseUrl": "https:\/\/127.0.0.1:'"$treezor_port"'", "clientId": "1234", "clientSecretFile": "'"${work//\//\\/}"'\/secret", "upstreamTls": {"caFile": "'"${c//\//\\/}"'\/treezor-ca.crt", "certFile": "'"${c//\//\\/}"'\/broker-to-treezor.crt", "keyFile": "'"${c//\//\\/}"'\/broker-to-treezor.key"}}, {/' \
    "$work/broker.json" >"$work/broker.next.json"
"$broker_bin" --check-config "$work/broker.next.json" >/dev/null || fail "the edited config is invalid"
cp "$work/broker.next.json" "$work/broker.json.new" && mv "$work/broker.json.new" "$work/broker.json"
kill -HUP "$broker_pid"
wait_for "the SIGHUP reload" grep -q '"msg":"config reloaded"' "$work/broker.log"
answer=$("${buf[@]}" curl "${tls[@]}" -d '{"tenant":"second"}' \
  "$url/treezor.broker.v1.TokenService/GetToken")
grep -q '"tenant": "second"' <<<"$answer" || fail "the reloaded tenant does not serve: $answer"
pass "SIGHUP reloads the config"

# Errors surface as gRPC status codes.
if out=$("${buf[@]}" curl "${tls[@]}" -d '{"tenant":"nope"}' \
    "$url/treezor.broker.v1.TokenService/GetToken" 2>&1); then
  fail "unknown tenant was answered: $out"
fi
grep -q 'permission_denied' <<<"$out" || fail "unknown tenant: $out"
pass "unknown tenant is PERMISSION_DENIED"

# A second broker on the same port must fail, not share the port.
sed -e "s/\"listenAddress\": \"127.0.0.1:0\"/\"listenAddress\": \"127.0.0.1:$port\"/" \
  "$work/broker.json" >"$work/second.json"
grep -q "127.0.0.1:$port" "$work/second.json" || fail "cannot write the second broker's config"
if "$broker_bin" --config "$work/second.json" 2>"$work/second.log"; then
  fail "a second broker started on a port in use"
fi
grep -q 'listenAddress' "$work/second.log" || fail "port conflict not explained: $(cat "$work/second.log")"
pass "port in use is a start-up error"

# SIGTERM: graceful stop, exit 0.
kill -TERM "$broker_pid"
status=0
wait "$broker_pid" || status=$?
[[ $status -eq 0 ]] || fail "broker exited $status on SIGTERM"
grep -q '"msg":"broker stopped"' "$work/broker.log" || fail "no 'broker stopped' line"
pass "SIGTERM exits 0"

# No secret and no token in any log.
for log in "$work/broker.log" "$work/second.log" "$work/simulator.log" "$work/allowed.log"; do
  ! grep -q "$secret" "$log" || fail "client secret in $log"
  ! grep -q "$token" "$log" || fail "token in $log"
  ! grep -q 'eyJ' "$log" || fail "a JWT in $log"
done
grep -q '"msg":"audit"' "$work/broker.log" || fail "no audit lines"
pass "logs hold no secret or token"
echo "broker_process_test: all passed"
