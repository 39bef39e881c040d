#!/usr/bin/env bash
# Generates development certificates for the demo (never for production):
#   internal CA  -> broker server cert (localhost, 127.0.0.1) and a client
#                   cert for the demo caller (URI SAN spiffe://demo/cli)
#   Treezor CA   -> the simulator's server cert, and the broker's Treezor
#                   client cert (RSA 2048, like the ones Treezor signs)
# Usage: scripts/dev-certs.sh DIR   (existing files are kept)
set -euo pipefail
dir=${1:?usage: dev-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

ca() {  # name subject
  [[ -f $1.crt ]] && return
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.crt" -days 825 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() {  # name ca cn san keyalg
  [[ -f $1.crt ]] && return
  local keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  [[ ${5:-ec} == rsa ]] && keyopt=(-newkey rsa:2048)
  openssl req -new "${keyopt[@]}" -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=$3" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca internal-ca "Demo internal CA"
leaf broker internal-ca broker "DNS:localhost,IP:127.0.0.1"
leaf demo-client internal-ca demo-client "URI:spiffe://demo/cli"
ca treezor-ca "Demo Treezor CA"
leaf treezor-simulator treezor-ca treezor-simulator "DNS:localhost,IP:127.0.0.1"
leaf broker-to-treezor treezor-ca broker-to-treezor "DNS:broker-to-treezor" rsa
chmod 0644 ./*.crt
echo "dev certificates in $dir"
