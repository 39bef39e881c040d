#!/usr/bin/env bash
# Guards the public proto contract (proto/, package treezor.broker.v1):
#   1. buf lint, with the rules of buf.yaml (repository root)
#   2. buf breaking against the committed baseline image
#      proto/baseline/treezor-broker-v1.binpb (category FILE: wire, names,
#      JSON names, numbers, types, services, file placement)
#   3. canaries on a copy of the tree: the unmodified copy passes, and
#      deleting, renumbering or renaming a field fails with a message naming
#      the field — so the check cannot silently stop checking
#
# Usage: deploy/ci/check-proto.sh                    run the checks
#        deploy/ci/check-proto.sh --update-baseline  on purpose only: print
#          what changed against the old baseline, then rewrite it from
#          today's proto/ (commit it, saying why the break is intended)
# buf is npm's @bufbuild/buf, pinned below, run through npx (the first run
# downloads it into npm's cache). Exits non-zero if any check fails.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

readonly buf_version=1.75.0
readonly baseline=proto/baseline/treezor-broker-v1.binpb
buf=(npx -y "@bufbuild/buf@$buf_version")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=()
section() { printf '\n==== %s ====\n' "$*"; }
pass() { passed=$((passed + 1)); printf '  PASS  %s\n' "$*"; }
fail() { failed+=("$*"); printf '  FAIL  %s\n' "$*"; }
indent() { sed 's/^/        /'; }

command -v npx >/dev/null ||
  { echo "check-proto: npx not found (scripts/install-deps.sh --test installs Node.js)" >&2; exit 1; }
if ! version=$("${buf[@]}" --version 2>&1) || [[ $version != "$buf_version" ]]; then
  echo "check-proto: cannot run buf $buf_version from npm: $version" >&2
  exit 1
fi

if [[ ${1:-} == --update-baseline ]]; then
  if [[ -f $baseline ]]; then
    echo "Changes against the current baseline that it will no longer flag:"
    "${buf[@]}" breaking --against "$baseline" | indent || true
  fi
  mkdir -p "$(dirname "$baseline")"
  # Imports are kept (buf breaking resolves google/protobuf/* from the image);
  # source info is not needed to compare and only adds bytes.
  "${buf[@]}" build --exclude-source-info -o "$baseline"
  echo "wrote $baseline from proto/ ($(wc -c <"$baseline") bytes); review and commit it"
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: deploy/ci/check-proto.sh [--update-baseline]" >&2
  exit 2
fi

section "buf $buf_version lint"
if out=$("${buf[@]}" lint 2>&1); then
  pass "buf lint (buf.yaml: STANDARD, with the exceptions it explains)"
else
  fail "buf lint"; indent <<<"$out"
fi

section "buf breaking against $baseline"
if [[ ! -f $baseline ]]; then
  fail "no baseline at $baseline (deploy/ci/check-proto.sh --update-baseline makes it)"
elif out=$("${buf[@]}" breaking --against "$baseline" 2>&1); then
  pass "proto/ is compatible with the baseline"
else
  fail "proto/ breaks the published contract (if intended: deploy/ci/check-proto.sh --update-baseline)"
  indent <<<"$out"
fi

section "buf breaking catches a broken contract (canaries on a copy)"
# canary NAME FILE SED_EXPRESSION EXPECTED_TEXT: the copy with FILE edited by
# SED_EXPRESSION must fail buf breaking with EXPECTED_TEXT in the message.
canary() {
  local name=$1 file=$2 edit=$3 expected=$4 copy=$work/$1 out
  mkdir -p "$copy" && cp -r buf.yaml proto "$copy/"
  sed -i "$edit" "$copy/$file"
  if cmp -s "$file" "$copy/$file"; then
    fail "canary '$name': the edit did not apply to $file (update the canary)"; return
  fi
  if out=$(cd "$copy" && "${buf[@]}" breaking --against "$root/$baseline" 2>&1); then
    fail "canary '$name': buf breaking accepted it"
  elif [[ $out == *"$expected"* ]]; then
    pass "canary '$name': $(grep -m1 -F "$expected" <<<"$out" | sed 's/^[^:]*:[0-9]*:[0-9]*://')"
  else
    fail "canary '$name': the message does not name it ($expected)"; indent <<<"$out"
  fi
}
if [[ -f $baseline ]]; then
  mkdir -p "$work/unmodified" && cp -r buf.yaml proto "$work/unmodified/"
  if out=$(cd "$work/unmodified" && "${buf[@]}" breaking --against "$root/$baseline" 2>&1); then
    pass "an unmodified copy passes (the canaries below fail for their edit alone)"
  else
    fail "an unmodified copy fails"; indent <<<"$out"
  fi
  tokens=proto/treezor/broker/v1/token_service.proto
  canary "delete GetTokenRequest.min_ttl" "$tokens" \
    '/^  google.protobuf.Duration min_ttl = 3;$/d' '"min_ttl" on message "GetTokenRequest"'
  canary "renumber GetTokenRequest.rejected_token_sha256 4 -> 6" "$tokens" \
    's/^  string rejected_token_sha256 = 4;$/  string rejected_token_sha256 = 6;/' \
    '"rejected_token_sha256" on message "GetTokenRequest"'
  canary "rename GetTokenResponse.access_token" "$tokens" \
    's/^  string access_token = 1;$/  string token = 1;/' '"access_token"'
fi

section "summary"
if ((${#failed[@]})); then
  printf '%d passed, %d FAILED:\n' "$passed" "${#failed[@]}"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "all $passed checks passed"
