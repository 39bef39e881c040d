#!/usr/bin/env bash
# Builds the broker's container image for real and runs it (podman, no
# Docker engine, no registry):
#   1. base images: the Dockerfile's FROM images (debian:bookworm and
#      debian:bookworm-slim) built with mmdebstrap from the Debian mirror the
#      machine's apt sources name, with the official images' apt/dpkg
#      settings, `podman import`ed under exactly those names. Cached as
#      tarballs in TZB_IMAGE_CACHE, keyed by the recipe, the apt sources and
#      the mirror's Release dates (a mirror update rebuilds them).
#   2. `podman build --pull=never` of deploy/docker/Dockerfile, unchanged; the
#      image must stay under TZB_IMAGE_BUDGET_MB (uncompressed).
#   3. smoke test (`podman run`): user 65532, read-only root filesystem, no
#      capabilities, no new privileges; `--check-config` passes on
#      deploy/examples/broker.json with development certificates mounted at
#      its paths; GetToken over mTLS against the Treezor simulator (on the
#      host), grpc.health.v1 on the plaintext port, /metrics, and SIGTERM
#      exits 0 within the grace period; no secret or token in the logs.
#   4. `podman kube play` of the chart's rendered Deployment + ConfigMap,
#      adapted only where podman 4.3 differs from Kubernetes
#      (kube-play-adapt.cjs): the pod runs with the chart's securityContext,
#      its probes (which podman ignores) are run by hand on their ports, and
#      it serves a token.
# gRPC calls use `buf curl` (npm @bufbuild/buf, pinned) through server
# reflection, as the README's commands do.
#
# Usage: deploy/ci/check-image.sh          (as root; scripts/test.sh runs it)
# Environment:
#   TZB_SIMULATOR_BIN    Treezor simulator for the host side (default
#                        build/tests/treezor-simulator; build it with
#                        `cmake --build build --target treezor-simulator`).
#                        The broker itself comes from the image.
#   TZB_IMAGE            tag to build (default localhost/treezor-token-broker:ci)
#   TZB_IMAGE_BUDGET_MB  size budget, MB (10^6 bytes) uncompressed (default 130)
#   TZB_IMAGE_CACHE      base image cache (default
#                        /var/cache/treezor-token-broker/base-images)
#   TZB_BUILDER          podman (default) or buildah (fallback:
#                        `buildah bud --isolation chroot`)
#   TZB_TOOLS_DIR        Helm and node packages (default build/tools, shared
#                        with check-chart.sh)
#   CONTAINERS_CONF      default deploy/ci/containers.conf (runc, ulimits)
# Needs podman buildah runc mmdebstrap uidmap (scripts/install-deps.sh
# --test), Node.js, and Debian's mirror and npm on the network.
# Exits non-zero if any check fails; prints a summary with timings either way.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

dockerfile=deploy/docker/Dockerfile
chart=deploy/helm/treezor-token-broker
example_config=deploy/examples/broker.json
simulator_bin=${TZB_SIMULATOR_BIN:-$root/build/tests/treezor-simulator}
image=${TZB_IMAGE:-localhost/treezor-token-broker:ci}
budget_mb=${TZB_IMAGE_BUDGET_MB:-130}
cache=${TZB_IMAGE_CACHE:-/var/cache/treezor-token-broker/base-images}
builder=${TZB_BUILDER:-podman}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/ci/containers.conf}
kube_version=1.29.0  # as check-chart.sh renders
buf=(npx -y @bufbuild/buf@1.75.0)
# shellcheck source=deploy/ci/tools.sh
source "$root/deploy/ci/tools.sh"

run_id=tzb-ci-$$
work=$(mktemp -d)
simulator_pid=
kube_yaml=
cleanup() {
  podman rm -f -t 0 "$run_id-smoke" >/dev/null 2>&1 || true
  if [[ -n $kube_yaml ]]; then podman kube down "$kube_yaml" >/dev/null 2>&1 || true; fi
  if [[ -n $simulator_pid ]]; then kill "$simulator_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=()
timings=()
section_name=
section_start=$SECONDS
section() {
  [[ -n $section_name ]] && timings+=("$(printf '%4ds  %s' $((SECONDS - section_start)) "$section_name")")
  section_name=$*
  section_start=$SECONDS
  printf '\n==== %s ====\n' "$*"
}
pass() { passed=$((passed + 1)); printf '  PASS  %s\n' "$*"; }
fail() { failed+=("$*"); printf '  FAIL  %s\n' "$*"; }
indent() { sed 's/^/        /'; }
die() { fail "$*"; summary; }
summary() {
  section "summary"
  printf '  time per step:\n'; printf '    %s\n' "${timings[@]}"
  printf '    %4ds  total\n' "$SECONDS"
  if ((${#failed[@]})); then
    printf '%d passed, %d FAILED:\n' "$passed" "${#failed[@]}"
    printf '  - %s\n' "${failed[@]}"
    exit 1
  fi
  echo "all $passed checks passed"
  exit 0
}
# Bounded polling: the only way to see another process become ready.
wait_for() {  # SECONDS COMMAND...: 0 once COMMAND succeeds, 1 on timeout
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------
section "tools"
missing=()
for tool in podman buildah runc catatonit mmdebstrap newuidmap node npx openssl curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
((${#missing[@]} == 0)) ||
  die "missing ${missing[*]}: run scripts/install-deps.sh --test (as root)"
[[ $(id -u) == 0 ]] || die "needs root (rootful podman, mmdebstrap, chown of mounted files)"
[[ -x $simulator_bin ]] ||
  die "no Treezor simulator at $simulator_bin (cmake --build build --target treezor-simulator, or set TZB_SIMULATOR_BIN)"
ensure_helm
ensure_node_packages
"${buf[@]}" --version >/dev/null 2>&1 || die "cannot run buf from npm (${buf[*]})"
echo "  $(podman --version), $(buildah --version | cut -d' ' -f1-3), mmdebstrap $(mmdebstrap --version | cut -d' ' -f2)," \
  "$("$helm" version --short), buf $("${buf[@]}" --version)"
echo "  CONTAINERS_CONF=$CONTAINERS_CONF"

# ---------------------------------------------------------------------------
section "base images (mmdebstrap from the machine's Debian mirror)"
# The FROM lines, with ARG defaults substituted: the names to import under.
mapfile -t from_images < <(awk '
  toupper($1) == "ARG" && index($2, "=") { split($2, kv, "="); arg[kv[1]] = kv[2] }
  toupper($1) == "FROM" {
    name = $2
    for (a in arg) gsub("\\$\\{" a "\\}", arg[a], name)
    print name
  }' "$dockerfile" | sort -u)
suite=
for name in "${from_images[@]}"; do
  [[ $name =~ ^debian:([a-z]+)(-slim)?$ ]] ||
    die "Dockerfile FROM $name: only debian:<suite>[-slim] can be built here"
  [[ -z $suite || $suite == "${BASH_REMATCH[1]}" ]] || die "Dockerfile mixes Debian suites ($suite, ${BASH_REMATCH[1]})"
  suite=${BASH_REMATCH[1]}
done
echo "  Dockerfile FROM: ${from_images[*]}"

# One-line apt sources for SUITE, SUITE-updates and SUITE-security, from the
# machine's deb822 sources (the mirror CI may use), else its one-line ones.
apt_sources() {
  deb822_sources | grep . || oneline_sources
}
oneline_sources() {
  sed -E 's/#.*//; s/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$suite" '$1 == "deb" && ($3 == suite || $3 == suite "-updates" || $3 == suite "-security") {
      $1 = "deb"; print }'
}
deb822_sources() {
  awk -v suite="$suite" '
    function flush() {
      if (types ~ /(^| )deb( |$)/)
        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
          if (s[j] == suite || s[j] == suite "-updates" || s[j] == suite "-security")
            print "deb " u[i] " " s[j] " " (comps == "" ? "main" : comps)
      types = ""; nu = ns = 0; comps = ""
    }
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*$/ { flush(); next }
    tolower($1) == "types:" { $1 = ""; types = $0 }
    tolower($1) == "uris:" { for (i = 2; i <= NF; i++) u[++nu] = $i }
    tolower($1) == "suites:" { for (i = 2; i <= NF; i++) s[++ns] = $i }
    tolower($1) == "components:" { $1 = ""; sub(/^ +/, ""); comps = $0 }
    END { flush() }' /etc/apt/sources.list.d/*.sources 2>/dev/null
}
mapfile -t sources < <(apt_sources)
((${#sources[@]})) || die "no deb $suite sources in /etc/apt/sources.list.d/*.sources or sources.list"
printf '  apt source: %s\n' "${sources[@]}"

# The official images' settings (debuerreotype): apt keeps no .deb, no
# package caches, no translations, gzipped lists; dpkg skips fsync. The slim
# variant also excludes documentation, man pages and locales from dpkg.
readonly slim_excludes=('/usr/share/doc/*' '/usr/share/groff/*' '/usr/share/info/*' '/usr/share/linda/*'
  '/usr/share/lintian/overrides/*' '/usr/share/locale/*' '/usr/share/man/*')
readonly slim_includes=('/usr/share/doc/*/copyright')
official_settings() {  # ROOTFS
  local a=$1/etc/apt/apt.conf.d
  cat >"$a/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$a/docker-autoremove-suggests"
  echo 'Acquire::GzipIndexes "true";' >"$a/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$a/docker-no-languages"
  echo 'force-unsafe-io' >"$1/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  # The runtime supplies these; the host's must not leak into the image.
  : >"$1/etc/resolv.conf"
  echo localhost >"$1/etc/hostname"
}
slimify() {  # ROOTFS: what debuerreotype-slimify does
  local p dir
  {
    for p in "${slim_excludes[@]}"; do echo "path-exclude $p"; done
    for p in "${slim_includes[@]}"; do echo "path-include $p"; done
  } >"$1/etc/dpkg/dpkg.cfg.d/docker"
  for p in "${slim_excludes[@]}"; do
    dir=$1${p%/\*}
    [[ -d $dir ]] || continue
    find "$dir" -mindepth 1 ! -type d ! -path "$1/usr/share/doc/*/copyright" -delete
    find "$dir" -mindepth 1 -depth -type d -empty -delete
  done
}
build_rootfs() {  # DIR
  mmdebstrap --quiet --variant=minbase --format=directory --dpkgopt=force-unsafe-io \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "$suite" "$1" "${sources[@]}"
  rm -f "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap"  # force-unsafe-io, set again below
  official_settings "$1"
}
export_rootfs() {  # DIR TARBALL: device nodes are the runtime's job
  tar --numeric-owner --xattrs -C "$1" --exclude='./dev/*' -cf "$2.partial" . && mv "$2.partial" "$2"
}

# The official images' config: a PATH (runtimes that add none, like podman
# kube play's, need it), bash as the command.
readonly image_config=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'CMD ["bash"]')

# The cache key: anything that changes the result. The recipe is the source
# of the functions above; the mirror's state is each suite's Release date.
release_dates=()
for line in "${sources[@]}"; do
  read -r _ uri s _ <<<"$line"
  date=$(curl -fsS --max-time 30 "$uri/dists/$s/InRelease" | sed -n 's/^Date: //p' | head -1) ||
    die "cannot read $uri/dists/$s/InRelease: the image build needs the mirror"
  release_dates+=("$s $date")
done
printf '  mirror: %s\n' "${release_dates[@]}"
key=$({
  declare -f official_settings slimify build_rootfs export_rootfs
  declare -p slim_excludes slim_includes image_config sources release_dates
  mmdebstrap --version
} | sha256sum | cut -c1-16)
echo "  cache key $key ($cache)"

mkdir -p "$cache"
built_rootfs=
for name in "${from_images[@]}"; do
  ref=docker.io/library/$name
  tarball=$cache/${name//[:\/]/_}-$key.tar
  label=$(podman image inspect --format '{{index .Config.Labels "io.treezor.base-key"}}' "$ref" 2>/dev/null || true)
  if [[ $label == "$key" ]]; then
    pass "$ref: in podman's storage, current (key $key)"
    continue
  fi
  if [[ ! -f $tarball ]]; then
    if [[ -z $built_rootfs ]]; then
      echo "  mmdebstrap --variant=minbase $suite ..."
      t0=$SECONDS
      build_rootfs "$work/rootfs" || die "mmdebstrap failed"
      built_rootfs=$work/rootfs
      echo "  rootfs built in $((SECONDS - t0)) s"
    fi
    if [[ $name == *-slim ]]; then
      cp -a "$built_rootfs" "$work/rootfs-slim" && slimify "$work/rootfs-slim"
      export_rootfs "$work/rootfs-slim" "$tarball"
    else
      export_rootfs "$built_rootfs" "$tarball"
    fi
    # Older keys' tarballs are stale.
    find "$cache" -maxdepth 1 -name "${name//[:\/]/_}-*.tar" ! -name "${tarball##*/}" -delete
  fi
  old_id=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
  if podman import --quiet "${image_config[@]}" --change "LABEL io.treezor.base-key=$key" \
       "$tarball" "$ref" >/dev/null; then
    pass "$ref: imported ($(du -m "$tarball" | cut -f1) MB, key $key)"
    # The previous base image goes, unless something still uses it.
    if [[ -n $old_id ]]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
  else
    die "podman import $tarball $ref failed"
  fi
done

# ---------------------------------------------------------------------------
section "image build ($builder, --pull=never, $dockerfile unchanged)"
t0=$SECONDS
case $builder in
  podman) build=(podman build --pull=never --layers) ;;
  buildah) build=(buildah bud --pull=never --layers --isolation chroot) ;;
  *) die "TZB_BUILDER must be podman or buildah, not $builder" ;;
esac
previous_id=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
if "${build[@]}" -f "$dockerfile" -t "$image" . >"$work/build.log" 2>&1; then
  pass "built $image in $((SECONDS - t0)) s"
  # The image this one replaces goes, unless something still uses it.
  if [[ -n $previous_id && $previous_id != $(podman image inspect --format '{{.Id}}' "$image") ]]; then
    podman rmi "$previous_id" >/dev/null 2>&1 || true
  fi
else
  tail -40 "$work/build.log" | indent
  die "$builder could not build $dockerfile (last lines above)"
fi
size=$(podman image inspect --format '{{.Size}}' "$image")
size_mb=$(((size + 500000) / 1000000))
base_size=$(podman image inspect --format '{{.Size}}' "docker.io/library/${from_images[-1]}" 2>/dev/null || echo 0)
for name in "${from_images[@]}"; do [[ $name == *-slim ]] && base_size=$(podman image inspect --format '{{.Size}}' "docker.io/library/$name"); done
echo "  $image: $size_mb MB uncompressed ($(((base_size + 500000) / 1000000)) MB of it debian:$suite-slim)"
if ((size_mb <= budget_mb)); then
  pass "image size $size_mb MB <= budget $budget_mb MB"
else
  fail "image size $size_mb MB exceeds the budget of $budget_mb MB (TZB_IMAGE_BUDGET_MB)"
  podman history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | cut -c1-140 | indent
fi
user=$(podman image inspect --format '{{.Config.User}}' "$image")
entrypoint=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$image")
if [[ $user == 65532:65532 && $entrypoint == '["/usr/local/bin/treezor-token-broker"]' ]]; then
  pass "image config: user $user, entrypoint $entrypoint"
else
  fail "image config: user '$user' (want 65532:65532), entrypoint $entrypoint"
fi

# ---------------------------------------------------------------------------
section "development certificates and the Treezor simulator (host)"
certs=$work/certs
scripts/dev-certs.sh "$certs" >/dev/null
# Containers reach the host as host.containers.internal (podman's bridge
# gateway): a simulator certificate for that name, from the dev Treezor CA.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=treezor-simulator \
  -keyout "$certs/simulator-bridge.key" -out "$work/simulator.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:host.containers.internal,DNS:localhost\n' \
  >"$work/simulator.ext"
openssl x509 -req -in "$work/simulator.csr" -CA "$certs/treezor-ca.crt" -CAkey "$certs/treezor-ca.key" \
  -CAcreateserial -days 2 -sha256 -extfile "$work/simulator.ext" -out "$certs/simulator-bridge.crt" 2>/dev/null
client_secret="ci-secret-$(openssl rand -hex 12)"
client_id=123456  # the example config's
printf '%s\n' "$client_secret" >"$work/client-secret"
sim_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])')
# On all addresses: the bridge's gateway address exists only once a container
# runs. The simulator demands a client certificate from the dev Treezor CA.
"$simulator_bin" --listen_host 0.0.0.0 --listen_port "$sim_port" \
  --cert "$certs/simulator-bridge.crt" --key "$certs/simulator-bridge.key" \
  --client_ca "$certs/treezor-ca.crt" --client_id "$client_id" \
  --client_secret_file "$work/client-secret" 2>"$work/simulator.log" &
simulator_pid=$!
if wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$sim_port"; then
  pass "simulator on 0.0.0.0:$sim_port (containers: https://host.containers.internal:$sim_port)"
else
  indent <"$work/simulator.log"; die "the simulator did not start"
fi

# grpc_call NAME URL JSON [buf curl flags...]: buf curl's output in $work/NAME.
mtls=(--cacert "$certs/internal-ca.crt" --cert "$certs/demo-client.crt" --key "$certs/demo-client.key"
  --servername localhost)  # the dev broker certificate names localhost
grpc_call() {
  local name=$1 url=$2 data=$3; shift 3
  "${buf[@]}" curl --protocol grpc --connect-timeout 5 "$@" -d "$data" "$url" >"$work/$name" 2>&1
}
# The plaintext probe port serves health Check only, without reflection (as
# kubelet needs): the schema comes from grpc-proto's health.proto.
health_proto=${TZB_GRPC_PROTO_DIR:-/usr/share/grpc-proto}/grpc/health/v1/health.proto
[[ -f $health_proto ]] || die "no $health_proto (Debian package grpc-proto)"
health_is() {  # WANT SERVICE HOST:PORT
  grpc_call health "http://$3/grpc.health.v1.Health/Check" "{\"service\":\"$2\"}" --http2-prior-knowledge \
    --schema "$health_proto" &&
    grep -q "\"status\": *\"$1\"" "$work/health"
}
# check_serving WHAT HOST GRPC_PORT HEALTH_PORT METRICS_PORT [PROBES...]
# PROBES: "kind:port:service" health checks to run as the kubelet would.
check_serving() {
  local what=$1 host=$2 grpc_port=$3 health_port=$4 metrics_port=$5 probe kind port service
  shift 5
  local probes=("$@")
  ((${#probes[@]})) || probes=("liveness:$health_port:liveness" "readiness:$health_port:treezor.broker.v1.TokenService")
  for probe in "${probes[@]}"; do
    IFS=: read -r kind port service <<<"$probe"
    # Readiness waits for the default token: the fetch from the simulator.
    if wait_for 60 health_is SERVING "$service" "$host:$port"; then
      pass "$what: $kind probe: grpc.health.v1 Check(\"$service\") on plaintext $host:$port: SERVING"
    else
      fail "$what: $kind probe: Check(\"$service\") on $host:$port not SERVING"; indent <"$work/health"
    fi
  done
  if grpc_call token "https://$host:$grpc_port/treezor.broker.v1.TokenService/GetToken" \
       '{"tenant":"acme-sandbox","scopes":["read_only"]}' "${mtls[@]}" &&
     token=$(node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
         if (r.tenant !== "acme-sandbox" || r.tokenType !== "Bearer" ||
             !/^[\w-]+\.[\w-]+\.[\w-]*$/.test(r.accessToken)) process.exit(1);
         process.stdout.write(r.accessToken)' <"$work/token"); then
    pass "$what: GetToken over mTLS on $host:$grpc_port: a Bearer JWT for acme-sandbox (${#token} bytes)"
    tokens+=("$token")
  else
    fail "$what: GetToken over mTLS on $host:$grpc_port"; indent <"$work/token"
  fi
  if curl -fsS --max-time 5 "http://$host:$metrics_port/metrics" >"$work/metrics" 2>&1 &&
     grep -qE '^treezor_broker_rpcs_total\{[^}]*method="GetToken"[^}]*\} [1-9]' "$work/metrics" &&
     grep -qE '^treezor_broker_rpcs_total\{code="OK",' "$work/metrics"; then
    pass "$what: /metrics on $host:$metrics_port counts the GetToken ($(grep -c '^treezor_broker_' "$work/metrics") series)"
  else
    fail "$what: /metrics on $host:$metrics_port"; head -20 "$work/metrics" | indent
  fi
}
# check_process WHAT CONTAINER: the kernel's view of the running broker.
check_process() {
  local what=$1 pid status
  pid=$(podman inspect --format '{{.State.Pid}}' "$2")
  status=$(cat "/proc/$pid/status")
  local uid gid capeff capbnd nnp seccomp
  uid=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' <<<"$status")
  gid=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' <<<"$status")
  capeff=$(awk '/^CapEff:/ { print $2 }' <<<"$status")
  capbnd=$(awk '/^CapBnd:/ { print $2 }' <<<"$status")
  nnp=$(awk '/^NoNewPrivs:/ { print $2 }' <<<"$status")
  seccomp=$(awk '/^Seccomp:/ { print $2 }' <<<"$status")
  if [[ $uid == "65532 65532 65532 65532" && $gid == "65532 65532 65532 65532" ]]; then
    pass "$what: the broker runs as uid/gid 65532"
  else
    fail "$what: the broker runs as uid $uid gid $gid, not 65532"
  fi
  if [[ $capeff == 0000000000000000 && $capbnd == 0000000000000000 && $nnp == 1 && $seccomp == 2 ]]; then
    pass "$what: no capabilities (effective and bounding sets empty), no new privileges, seccomp filter on"
  else
    fail "$what: CapEff $capeff CapBnd $capbnd NoNewPrivs $nnp Seccomp $seccomp (want 0, 0, 1, 2)"
  fi
  if awk '$5 == "/" { split($6, o, ","); for (i in o) if (o[i] == "ro") ok = 1 } END { exit !ok }' \
       "/proc/$pid/mountinfo" &&
     ! podman exec "$2" /bin/sh -c ': >/probe' 2>/dev/null; then
    pass "$what: root filesystem read-only (mounted ro; writing / fails)"
  else
    fail "$what: root filesystem is writable"
  fi
}
tokens=()
address_of() {  # CONTAINER: its address on its (first) network
  podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | cut -d' ' -f1
}

# ---------------------------------------------------------------------------
section "smoke test: podman run (read-only, no capabilities, as the image's user)"
# The files at the example config's paths, as the chart mounts them: 0440,
# group 65532 (the pod's fsGroup).
stage=$work/etc-broker
install -d -m 0755 "$stage"/{config,tls,secrets/acme-sandbox,treezor/acme-sandbox}
install -m 0440 -g 65532 "$certs/broker.crt" "$stage/tls/tls.crt"
install -m 0440 -g 65532 "$certs/broker.key" "$stage/tls/tls.key"
install -m 0440 -g 65532 "$certs/internal-ca.crt" "$stage/tls/ca.crt"
install -m 0440 -g 65532 "$work/client-secret" "$stage/secrets/acme-sandbox/client-secret"
install -m 0440 -g 65532 "$certs/broker-to-treezor.crt" "$stage/treezor/acme-sandbox/tls.crt"
install -m 0440 -g 65532 "$certs/broker-to-treezor.key" "$stage/treezor/acme-sandbox/tls.key"
install -m 0440 -g 65532 "$certs/treezor-ca.crt" "$stage/treezor/acme-sandbox/ca.crt"
locked=(--read-only --cap-drop ALL --security-opt no-new-privileges)
mount_stage=(-v "$stage:/etc/treezor-token-broker:ro")

# The example config as is, at the path the image's CMD reads.
install -m 0444 "$example_config" "$stage/config/broker.json"
check_config=(podman run --rm "${locked[@]}" --network none "${mount_stage[@]}" "$image"
  --check-config /etc/treezor-token-broker/config/broker.json)
if out=$("${check_config[@]}" 2>&1); then
  pass "--check-config $example_config (dev certificates at its paths): ${out##*: }"
else
  fail "--check-config $example_config in the image"; indent <<<"$out"
fi
# The check is real: without the key the config names, it fails naming it.
mv "$stage/tls/tls.key" "$work/tls.key.aside"
if out=$("${check_config[@]}" 2>&1); then
  fail "--check-config passed without serverTls.keyFile"
elif [[ $out == *serverTls.keyFile* ]]; then
  pass "--check-config fails naming serverTls.keyFile when that file is missing"
else
  fail "--check-config failed without naming serverTls.keyFile"; indent <<<"$out"
fi
mv "$work/tls.key.aside" "$stage/tls/tls.key"

# The example config pointed at the simulator (plus its CA), with the dev
# client allowed.
grace=5
node -e '
  const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const t = c.tenants[0];
  t.baseUrl = `https://host.containers.internal:${process.argv[2]}`;
  t.upstreamTls.caFile = "/etc/treezor-token-broker/treezor/acme-sandbox/ca.crt";
  c.callers.push({ identity: "spiffe://demo/cli", tenants: [t.name] });
  c.shutdownGracePeriod = `${process.argv[3]}s`;
  process.stdout.write(JSON.stringify(c, null, 2));
' "$example_config" "$sim_port" "$grace" >"$work/serve.json"
install -m 0444 "$work/serve.json" "$stage/config/broker.json"
if podman run -d --name "$run_id-smoke" "${locked[@]}" "${mount_stage[@]}" "$image" >/dev/null 2>"$work/run.err"; then
  ip=$(address_of "$run_id-smoke")
  pass "started (default CMD: --config /etc/treezor-token-broker/config/broker.json) at $ip"
  check_process "podman run" "$run_id-smoke"
  check_serving "podman run" "$ip" 8443 8081 9090
  # SIGTERM: drains, exits 0 within shutdownGracePeriod.
  t0=$(date +%s%N)
  podman kill --signal TERM "$run_id-smoke" >/dev/null
  code=$(timeout $((grace + 10)) podman wait "$run_id-smoke" || echo timeout)
  ms=$((($(date +%s%N) - t0) / 1000000))
  if [[ $code == 0 ]] && ((ms <= grace * 1000)); then
    pass "SIGTERM: exit 0 after $ms ms (grace period ${grace} s)"
  else
    fail "SIGTERM: exit '$code' after $ms ms (want 0 within ${grace} s)"
  fi
  podman logs "$run_id-smoke" >"$work/smoke.log" 2>&1
  if grep -q '"msg":"audit"' "$work/smoke.log"; then
    pass "logs: JSON lines with an audit line per RPC ($(wc -l <"$work/smoke.log") lines)"
  else
    fail "logs: no audit line"; tail -20 "$work/smoke.log" | indent
  fi
else
  fail "podman run"; indent <"$work/run.err"
fi

# ---------------------------------------------------------------------------
section "podman kube play: the chart's Deployment + ConfigMap"
# Values for a CI release: this image, the simulator as Treezor (its CA from
# a ConfigMap, as upstreamCa does), the dev client allowed, metrics on.
# securityContexts, ports and probes stay the chart's defaults.
cat >"$work/values-kube.yaml" <<YAML
image:
  repository: ${image%:*}
  tag: "${image##*:}"
metrics:
  enabled: true
config:
  tenants:
    - name: acme-sandbox
      baseUrl: https://host.containers.internal:$sim_port
      clientId: "$client_id"
      defaultScopes: [read_write]
      allowedScopes: [read_only, read_write]
      secrets:
        credentials: treezor-acme-sandbox
        mtls: treezor-acme-sandbox-mtls
      upstreamCa:
        configMap: treezor-ca
  callers:
    - identity: spiffe://demo/cli
      tenants: [acme-sandbox]
YAML
# The Secrets and ConfigMap an operator would create (deploy/README.md step 2).
secrets=$work/kube-secrets configmaps=$work/kube-configmaps
# A release name of this run's own, so that two runs on one machine do not
# share a pod; the server certificate's Secret is "<release>-<chart>-tls".
release=$run_id
server_tls=$release-treezor-token-broker-tls
mkdir -p "$secrets"/{"$server_tls",treezor-acme-sandbox,treezor-acme-sandbox-mtls} \
  "$configmaps/treezor-ca"
cp "$certs/broker.crt" "$secrets/$server_tls/tls.crt"
cp "$certs/broker.key" "$secrets/$server_tls/tls.key"
cp "$certs/internal-ca.crt" "$secrets/$server_tls/ca.crt"
cp "$work/client-secret" "$secrets/treezor-acme-sandbox/client-secret"
cp "$certs/broker-to-treezor.crt" "$secrets/treezor-acme-sandbox-mtls/tls.crt"
cp "$certs/broker-to-treezor.key" "$secrets/treezor-acme-sandbox-mtls/tls.key"
cp "$certs/treezor-ca.crt" "$configmaps/treezor-ca/ca.crt"

if ! "$helm" template "$release" "$chart" --namespace broker --kube-version "$kube_version" \
     -f "$work/values-kube.yaml" >"$work/rendered.yaml" 2>"$work/helm.err"; then
  indent <"$work/helm.err"; die "helm template"
fi
if ! node deploy/ci/kube-play-adapt.cjs "$work/rendered.yaml" "$secrets" "$configmaps" "$work/kube" \
     >"$work/plan.json" 2>"$work/adapt.err"; then
  indent <"$work/adapt.err"; die "kube-play-adapt.cjs"
fi
echo "  adapted for podman:"; node -p 'require(process.argv[1]).adapted.join("\n")' "$work/plan.json" | indent
plan() { node -p "const p = require('$work/plan.json'); $1"; }
kube_yaml=$work/kube/kube.yaml
# Bounded: a podman whose lock table was left held by a killed podman hangs
# here for ever (seen on a reused VM; `podman system renumber` repairs it).
if timeout 300 podman kube play "$kube_yaml" >"$work/play.out" 2>&1; then
  pass "podman kube play: $(plan 'p.name') ($(plan 'p.containers.map(c => c.name).join(", ")'))"
else
  indent <"$work/play.out"; die "podman kube play"
fi
pod_id=$(awk 'previous == "Pod:" { print; exit } { previous = $0 }' "$work/play.out")
container=$(podman ps -a --filter "pod=$pod_id" --format '{{.Names}}' |
  grep -- "-$(plan 'p.containers[0].name')\$" || true)
[[ -n $pod_id && -n $container ]] || { indent <"$work/play.out"; die "no broker container in the played pod"; }
ip=$(address_of "$container")
[[ -n $ip ]] || die "no address for $container"
echo "  container $container, pod address $ip"
check_process "kube play" "$container"
# What the container got of the chart's securityContext, as podman reports it.
podman inspect --format 'user {{.Config.User}}, groups {{.HostConfig.GroupAdd}}, read-only {{.HostConfig.ReadonlyRootfs}}, cap-drop {{.HostConfig.CapDrop}}, cap-add {{.HostConfig.CapAdd}}, security-opt {{.HostConfig.SecurityOpt}}, memory limit {{.HostConfig.Memory}}, cpu quota {{.HostConfig.CpuQuota}}/{{.HostConfig.CpuPeriod}}, stop timeout {{.Config.StopTimeout}} s, healthcheck {{.Config.Healthcheck}}' \
  "$container" | fold -s -w 100 | indent
echo "$(grep -E '^(Uid|Gid|Groups):' "/proc/$(podman inspect --format '{{.State.Pid}}' "$container")/status" |
  tr '\n\t' '  ')" | indent
mapfile -t probes < <(plan 'Object.entries(p.containers[0].probes).filter(([, v]) => v && v.grpc)
  .map(([k, v]) => `${k}:${v.grpc.port}:${v.grpc.service}`).join("\n")')
check_serving "kube play" "$ip" "$(plan 'p.containers[0].ports.grpc')" "$(plan 'p.containers[0].ports.health')" \
  "$(plan 'p.containers[0].ports.metrics')" "${probes[@]}"
grace=$(plan 'p.terminationGracePeriodSeconds')
t0=$(date +%s%N)
podman pod stop -t "$grace" "$pod_id" >/dev/null 2>&1 || true
ms=$((($(date +%s%N) - t0) / 1000000))
code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
if [[ $code == 0 ]] && ((ms <= grace * 1000)); then
  pass "pod stop: the broker exits 0 after $ms ms (terminationGracePeriodSeconds $grace)"
else
  fail "pod stop: exit $code after $ms ms (want 0 within $grace s)"
fi
podman logs "$container" >"$work/kube.log" 2>&1 || true

# ---------------------------------------------------------------------------
section "no secret or token in the logs"
leaks=0
for log in "$work/smoke.log" "$work/kube.log"; do
  [[ -f $log ]] || continue
  for s in "$client_secret" "${tokens[@]}"; do
    grep -qF -- "$s" "$log" && { fail "${log##*/} contains a secret or a token"; leaks=1; }
  done
done
((leaks)) || pass "neither the client secret nor any token handed out appears in the container logs"

summary
