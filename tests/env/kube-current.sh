#!/usr/bin/env bash
# Builds the current Kubernetes test binaries from their published Go modules into the cache:
#   kube-apiserver and kubectl from k8s.io/kubernetes (cmd/kube-apiserver, cmd/kubectl: the k8s.io/kubectl
#     module has no main package), through the wrapper module tests/env/kube-current (k8s.io/kubernetes
#     requires its staging modules at v0.0.0; the wrapper's `replace` lines map each to its published v0.X.Y);
#   etcd from go.etcd.io/etcd/server/v3, through tests/env/etcd-current (`go install` refuses etcd's own
#     module: its go.mod carries local replaces).
# The versions are the wrappers' go.mod pins (tests/env/pin-current.sh moves them). Modules land in Go's own
# module cache, binaries in $OUTPOST_TEST_CACHE as kube-apiserver-<version>, kubectl-<version> and
# etcd-<version>. Safe to re-run: cached binaries are reused. OUTPOST_TEST_KUBE_APISERVER, OUTPOST_TEST_ETCD
# and OUTPOST_TEST_KUBECTL, when set, replace the binary they name (it is not built).
# Prints three paths on its last three lines: kube-apiserver, etcd, kubectl.
# Cold (empty module and build caches) on 2 idle cores: about 6 minutes (kube-apiserver 4, kubectl 1 after it
# as most of its packages are then cached, etcd under 1); up to 11 beside other work. kubectl alone from an
# empty build cache takes about 4.5 CPU-minutes.
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ -n "${OUTPOST_TEST_KUBE_APISERVER:-}" ] && [ -n "${OUTPOST_TEST_ETCD:-}" ] &&
  [ -n "${OUTPOST_TEST_KUBECTL:-}" ]; then
  log "using OUTPOST_TEST_KUBE_APISERVER, OUTPOST_TEST_ETCD and OUTPOST_TEST_KUBECTL: nothing to build"
  echo "$OUTPOST_TEST_KUBE_APISERVER"
  echo "$OUTPOST_TEST_ETCD"
  echo "$OUTPOST_TEST_KUBECTL"
  exit 0
fi

GO="$(modern_go "$HERE/kube-current/go.mod")"
# Exactly this toolchain and the committed go.sum files; the build never rewrites a go.mod.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

# build <override> <wrapper dir> <package> <cache file> <extra ldflags>: go build -trimpath into the cache,
# atomically (a 0-byte or half-written binary from an interrupted build never counts as cached). Does nothing
# when the variable named <override> (OUTPOST_TEST_...) is set: the binary it names is used instead.
build() {
  local override="$1" dir="$2" pkg="$3" bin="$4" ldflags="$5" start
  if [ -n "${!override:-}" ]; then
    log "using $override=${!override} instead of building $pkg"
    return 0
  fi
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

APISERVER="${OUTPOST_TEST_KUBE_APISERVER:-$OUTPOST_TEST_CACHE/kube-apiserver-${K8S#v}}"
KUBECTL="${OUTPOST_TEST_KUBECTL:-$OUTPOST_TEST_CACHE/kubectl-${K8S#v}}"
# What `kube-apiserver --version`, /version and `kubectl version` report, and the version in their User-Agent
# (client-go's copy) and in kubectl's ApplySet tooling annotation; `go build` alone would say v0.0.0-master.
# The same -X flags as Kubernetes's own build (hack/lib/version.sh), for both packages.
VERSION_LDFLAGS=""
for V in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  VERSION_LDFLAGS+=" -X $V.gitVersion=$K8S -X $V.gitMajor=1 -X $V.gitMinor=$MINOR -X $V.gitTreeState=clean"
done
build OUTPOST_TEST_KUBE_APISERVER "$HERE/kube-current" k8s.io/kubernetes/cmd/kube-apiserver "$APISERVER" \
  "$VERSION_LDFLAGS"
# Right after kube-apiserver: most of kubectl's packages (client-go, apimachinery) are in Go's build cache then.
build OUTPOST_TEST_KUBECTL "$HERE/kube-current" k8s.io/kubernetes/cmd/kubectl "$KUBECTL" "$VERSION_LDFLAGS"

ETCD_BIN="${OUTPOST_TEST_ETCD:-$OUTPOST_TEST_CACHE/etcd-${ETCD#v}}"
build OUTPOST_TEST_ETCD "$HERE/etcd-current" go.etcd.io/etcd/server/v3 "$ETCD_BIN" ""

echo "$APISERVER"
echo "$ETCD_BIN"
echo "$KUBECTL"
