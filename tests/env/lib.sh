#!/usr/bin/env bash
# Shared helpers for the test-environment scripts. Sourced, never run.
# Everything here is idempotent: a second run finds what the first one made and does nothing.
set -euo pipefail

OUTPOST_TEST_CACHE="${OUTPOST_TEST_CACHE:-$HOME/.cache/outpost-test}"
mkdir -p "$OUTPOST_TEST_CACHE"

log() { printf '[outpost-env] %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install Debian packages that are not installed yet; `apt-get update` only when something is missing.
APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The release codename of this machine (bookworm, trixie, ...).
codename() { . /etc/os-release && echo "${VERSION_CODENAME}"; }

# Print the machine's own Debian apt source for the main suite of this release as a deb822 stanza,
# rewritten with the given Types and Suites. We derive it from what the machine already uses so the
# repository never names a mirror host.
derived_source() {
  local types="$1" suites="$2" code
  code="$(codename)"
  local uris="" signed=""
  # deb822 sources first.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    local stanza
    stanza="$(awk -v code="$code" 'BEGIN{RS="";FS="\n"} {
        ok=0; for(i=1;i<=NF;i++){ if($i ~ /^Suites:/){ n=split($i,a,/[ \t]+/); for(j=2;j<=n;j++) if(a[j]==code) ok=1 } }
        if(ok){ print; exit } }' "$f")"
    if [ -n "$stanza" ]; then
      uris="$(printf '%s\n' "$stanza" | sed -n 's/^URIs:[[:space:]]*//p' | head -1)"
      signed="$(printf '%s\n' "$stanza" | sed -n 's/^Signed-By:[[:space:]]*//p' | head -1)"
      break
    fi
  done
  # Then one-line sources.
  if [ -z "$uris" ] && [ -f /etc/apt/sources.list ]; then
    uris="$(awk -v code="$code" '$1=="deb" { for(i=2;i<=NF;i++) if($i==code){ print ($2 ~ /^\[/ ? $3 : $2); exit } }' /etc/apt/sources.list)"
  fi
  if [ -z "$uris" ]; then
    log "cannot find this machine's Debian apt source for suite '$code'"
    return 1
  fi
  printf 'Types: %s\nURIs: %s\nSuites: %s\nComponents: main\n' "$types" "$uris" "$suites"
  if [ -n "$signed" ]; then printf 'Signed-By: %s\n' "$signed"; fi
}

# The machine's current Go toolchain (/usr/local/go, else the first go on PATH), checked against the `go`
# line of the go.mod given; never Debian's Go 1.19 (/usr/lib/go-1.19), which only builds kube-apiserver 1.20.
# Prints the go binary. GO=/path/to/go picks another.
modern_go() {
  local gomod="$1" go="${GO:-}" need have
  if [ -z "$go" ]; then
    if [ -x /usr/local/go/bin/go ]; then go=/usr/local/go/bin/go; else go="$(command -v go || true)"; fi
  fi
  [ -n "$go" ] || { log "no Go toolchain found (expected /usr/local/go/bin/go or go on PATH)"; return 1; }
  need="$(sed -n 's/^go //p' "$gomod")"
  have="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
  have="${have#go}"
  if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
    log "$go is Go $have; $gomod needs Go $need or newer (set GO=/path/to/go)"
    return 1
  fi
  echo "$go"
}

# The version a go.mod requires of a module: `gomod_version go.mod k8s.io/kubernetes` prints v1.36.3.
gomod_version() {
  awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { print ($1 == m ? $2 : $3); exit }' "$1"
}
