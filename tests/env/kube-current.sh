#!/usr/bin/env bash
# Builds the current Kubernetes test servers from their published Go modules into the cache:
#   kube-apiserver from k8s.io/kubernetes, through the wrapper module tests/env/kube-current (k8s.io/kubernetes
#     requires its staging modules at v0.0.0; the wrapper's `replace` lines map each to its published v0.X.Y);
#   etcd from go.etcd.io/etcd/server/v3, through tests/env/etcd-current (`go install` refuses etcd's own
#     module: its go.mod carries local replaces).
# The versions are the wrappers' go.mod pins (tests/env/pin-current.sh moves them). Modules land in Go's own
# module cache, binaries in $OUTPOST_TEST_CACHE as kube-apiserver-<version> and etcd-<version>. Safe to re-run:
# cached binaries are reused. Prints the kube-apiserver and etcd paths on its last two lines.
# Cold (empty module and build caches) on 2 idle cores: about 5 minutes (kube-apiserver 4, etcd under 1);
# up to 9 beside other work.
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ -n "${OUTPOST_TEST_KUBE_APISERVER:-}" ] && [ -n "${OUTPOST_TEST_ETCD:-}" ]; then
  log "using OUTPOST_TEST_KUBE_APISERVER=$OUTPOST_TEST_KUBE_APISERVER and OUTPOST_TEST_ETCD=$OUTPOST_TEST_ETCD"
  echo "$OUTPOST_TEST_KUBE_APISERVER"
  echo "$OUTPOST_TEST_ETCD"
  exit 0
fi

GO="$(modern_go "$HERE/kube-current/go.mod")"
# Exactly this toolchain and the committed go.sum files; the build never rewrites a go.mod.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

# build <wrapper dir> <package> <cache file> <extra ldflags>: go build -trimpath into the cache, atomically
# (a 0-byte or half-written binary from an interrupted build never counts as cached).
build() {
  local dir="$1" pkg="$2" bin="$3" ldflags="$4" start
  if [ -x "$bin" ] && [ -s "$bin" ]; then
    log "$(basename "$bin") cached at $bin"
    return 0
  fi
  start="$(date +%s)"
  log "building $(basename "$bin") from $pkg with $("$GO" version | cut -d' ' -f3) (minutes on 2 cores)"
  # Go's module download lines (hundreds) and any compiler output go to a log, shown when the build fails.
  (cd "$dir" && "$GO" build -trimpath -ldflags="-s -w $ldflags" -o "$bin.tmp" "$pkg") >"$bin.log" 2>&1 || {
    rm -f "$bin.tmp"
    tail -40 "$bin.log" >&2
    log "building $pkg failed (wrapper module: $dir; full log: $bin.log)"
    return 1
  }
  [ -s "$bin.tmp" ] || { log "go build left no $bin.tmp"; return 1; }
  mv "$bin.tmp" "$bin"
  rm -f "$bin.log"
  log "$(basename "$bin") built in $(($(date +%s) - start))s: $bin"
}

K8S="$(gomod_version "$HERE/kube-current/go.mod" k8s.io/kubernetes)"
ETCD="$(gomod_version "$HERE/etcd-current/go.mod" go.etcd.io/etcd/server/v3)"
[ -n "$K8S" ] && [ -n "$ETCD" ] || { log "cannot read the pinned versions from tests/env/*-current/go.mod"; exit 1; }
MINOR="${K8S#v1.}"
MINOR="${MINOR%%.*}"

APISERVER="$OUTPOST_TEST_CACHE/kube-apiserver-${K8S#v}"
# What `kube-apiserver --version` and /version report; `go build` alone would say v0.0.0-master.
V=k8s.io/component-base/version
build "$HERE/kube-current" k8s.io/kubernetes/cmd/kube-apiserver "$APISERVER" \
  "-X $V.gitVersion=$K8S -X $V.gitMajor=1 -X $V.gitMinor=$MINOR -X $V.gitTreeState=clean"

ETCD_BIN="$OUTPOST_TEST_CACHE/etcd-${ETCD#v}"
build "$HERE/etcd-current" go.etcd.io/etcd/server/v3 "$ETCD_BIN" ""

echo "$APISERVER"
echo "$ETCD_BIN"
