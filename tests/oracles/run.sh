#!/usr/bin/env bash
# The Go reference oracles (DESIGN §9): Go modules under tests/oracles that judge what the Rust tests recorded.
#   run.sh download  fetch the modules into Go's module cache (tests/env/setup.sh; the test run then needs no
#                    network)
#   run.sh clear     empty the status corpus and the kstatus dump (make test, before cargo test, so stale files
#                    never count)
#   run.sh [test]    go test ./... over both, timed (make test, after cargo test)
# The corpus is OUTPOST_STATUS_CORPUS, else <cargo target dir>/status-corpus; the kstatus dump (live objects and
# our health verdicts) is OUTPOST_KSTATUS_DUMP, else <cargo target dir>/kstatus-dump — as tests/src/oracle.rs
# writes them.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
log() { printf '[outpost-oracles] %s\n' "$*" >&2; }

CORPUS="${OUTPOST_STATUS_CORPUS:-${CARGO_TARGET_DIR:-$ROOT/target}/status-corpus}"
DUMP="${OUTPOST_KSTATUS_DUMP:-${CARGO_TARGET_DIR:-$ROOT/target}/kstatus-dump}"

if [ "${1:-test}" = clear ]; then
  # Only their own files: the directories may be ones the caller named.
  for dir in "$CORPUS" "$DUMP"; do
    if [ -d "$dir" ]; then
      find "$dir" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.json' -o -name '.*.tmp' \) -delete
    fi
  done
  exit 0
fi

# The machine's current Go: /usr/local/go, else the first go on PATH. Never Debian's Go 1.19 (/usr/lib/go-1.19),
# which is there only to build kube-apiserver 1.20 and cannot read this go.mod.
if [ -z "${GO:-}" ]; then
  if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; else GO="$(command -v go || true)"; fi
fi
[ -n "$GO" ] || { log "no Go toolchain found (expected /usr/local/go/bin/go or go on PATH)"; exit 1; }
cd "$HERE"
need="$(sed -n 's/^go //p' go.mod)"
have="$(GOTOOLCHAIN=local "$GO" env GOVERSION)"
have="${have#go}"
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  log "$GO is Go $have; the oracles need Go $need or newer (set GO=/path/to/go)"
  exit 1
fi
# Use exactly this toolchain and the committed go.sum; never rewrite go.mod behind the tests' back.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"

case "${1:-test}" in
  download)
    log "downloading the oracles' Go modules with Go $have"
    "$GO" mod download
    ;;
  test)
    export OUTPOST_STATUS_CORPUS="$CORPUS" OUTPOST_KSTATUS_DUMP="$DUMP"
    log "go test ./... in tests/oracles over $CORPUS and $DUMP (Go $have)"
    start="$(date +%s%N)"
    rc=0
    "$GO" test -count=1 ./... || rc=$?
    elapsed="$(( ($(date +%s%N) - start) / 1000000 ))"
    log "oracle phase took $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000)))s"
    exit "$rc"
    ;;
  *)
    log "usage: $0 [download|clear|test]"
    exit 2
    ;;
esac
