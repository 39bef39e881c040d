#!/usr/bin/env bash
# Installs the Debian 12 packages the broker needs to build and test.
# Idempotent: does nothing (and needs no network) when all are installed.
# Usage: scripts/install-deps.sh [--test]   (--test adds the test-only tools)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  grpc-proto libabsl-dev libssl-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libcpp-httplib-dev prometheus-cpp-dev
  libbenchmark-dev openssl
)
if [[ "${1:-}" == "--test" ]]; then
  # clang + its sanitizer runtime for the TSan build; Python gRPC for the
  # reflection-client test; Node/npm for `buf curl`.
  packages+=(clang libclang-rt-14-dev python3-grpcio python3-grpc-tools)
  # The container image checks (deploy/ci/check-image.sh): podman with runc
  # and catatonit (the pause process of `podman kube play` pods), buildah,
  # mmdebstrap for the Debian base images, uidmap, curl.
  packages+=(podman buildah runc catatonit mmdebstrap uidmap curl unzip)
  # The machine image may bring its own Node.js; only fall back to Debian's.
  command -v npx >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
