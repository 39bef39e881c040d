#!/usr/bin/env bash
# Starts the broker in demo mode: the bundled Treezor simulator (HTTPS with
# mandatory client certificates, issuing JWTs) on 127.0.0.1:8444 and the
# broker on 127.0.0.1:8443 (mTLS) + 127.0.0.1:8081 (plaintext health) +
# 127.0.0.1:9090 (metrics), with
# development certificates generated on first run under .demo/.
#
# Usage (as root on Debian 12, from anywhere):  scripts/demo.sh
# Ctrl-C stops both. Environment: DEMO_TOKEN_LIFETIME (default 5m, so renewals
# show up in the log quickly), BUILD_DIR (default build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
demo=$root/.demo
lifetime=${DEMO_TOKEN_LIFETIME:-5m}

"$root/scripts/install-deps.sh"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=(treezor-token-broker treezor-simulator)
if grep -q "^build client/treezor-token:" "$build/build.ninja"; then
  targets+=(treezor-token)
fi
cmake --build "$build" --target "${targets[@]}"

"$root/scripts/dev-certs.sh" "$demo/certs" >/dev/null
if [[ ! -f $demo/client-secret ]]; then
  (umask 077; openssl rand -hex 24 >"$demo/client-secret")
fi
c=$demo/certs
cat >"$demo/broker.json" <<JSON
{
  "listenAddress": "127.0.0.1:8443",
  "healthListenAddress": "127.0.0.1:8081",
  "metricsListenAddress": "127.0.0.1:9090",
  "serverTls": {"certFile": "$c/broker.crt", "keyFile": "$c/broker.key",
                "clientCaFile": "$c/internal-ca.crt"},
  "tenants": [{
    "name": "demo",
    "baseUrl": "https://localhost:8444",
    "clientId": "1234",
    "clientSecretFile": "$demo/client-secret",
    "defaultScopes": ["read_write"],
    "upstreamTls": {"caFile": "$c/treezor-ca.crt",
                    "certFile": "$c/broker-to-treezor.crt",
                    "keyFile": "$c/broker-to-treezor.key"}
  }],
  "callers": [{"identity": "spiffe://demo/cli", "tenants": ["demo"]}],
  "admins": [{"identity": "spiffe://demo/cli"}],
  "shutdownGracePeriod": "5s"
}
JSON
"$build/server/treezor-token-broker" --check-config "$demo/broker.json"

"$build/tests/treezor-simulator" --listen_port 8444 \
  --cert "$c/treezor-simulator.crt" --key "$c/treezor-simulator.key" \
  --client_ca "$c/treezor-ca.crt" --client_id 1234 \
  --client_secret_file "$demo/client-secret" --token_lifetime "$lifetime" \
  2>"$demo/simulator.log" &
simulator=$!
trap 'kill $simulator 2>/dev/null; wait $simulator 2>/dev/null || true' EXIT

cat <<TEXT

  Treezor simulator: https://localhost:8444 (log: .demo/simulator.log)
  Broker:            127.0.0.1:8443 (mTLS), health on 127.0.0.1:8081,
                     metrics on http://127.0.0.1:9090/metrics
  Config:            .demo/broker.json (edit it: the broker reloads it)

  Get a token with grpcurl (server reflection, no proto files needed):
    grpcurl -cacert $c/internal-ca.crt -cert $c/demo-client.crt -key $c/demo-client.key \\
      -d '{"tenant":"demo"}' localhost:8443 treezor.broker.v1.TokenService/GetToken

  ... or with buf curl (needs only Node.js; works on this machine as is):
    npx -y @bufbuild/buf curl --protocol grpc --cacert $c/internal-ca.crt \\
      --cert $c/demo-client.crt --key $c/demo-client.key \\
      -d '{"tenant":"demo"}' https://localhost:8443/treezor.broker.v1.TokenService/GetToken
TEXT
if [[ -x $build/client/treezor-token ]]; then
  cat <<TEXT

  ... or with the project's CLI:
    $build/client/treezor-token get --addr localhost:8443 --ca $c/internal-ca.crt \\
      --cert $c/demo-client.crt --key $c/demo-client.key --tenant demo --format header
TEXT
fi
echo
echo "  Broker logs follow (JSON lines). Ctrl-C to stop."
echo
"$build/server/treezor-token-broker" --config "$demo/broker.json"
