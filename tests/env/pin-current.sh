#!/usr/bin/env bash
# Moves the current Kubernetes version of the tests to another release (a maintainer's tool; the build never
# runs it):
#   bash tests/env/pin-current.sh v1.37.2 [v3.6.17]
# rewrites tests/env/kube-current/go.mod to require k8s.io/kubernetes at that version, with kube-apiserver and
# kubectl as its tools (so tidy keeps the modules both need) and a `replace` line for every staging module that
# k8s.io/kubernetes's own go.mod replaces (k8s.io/api => k8s.io/api v0.37.2, ...), pins the etcd server when a
# second version is given, and tidies both wrappers (go.sum follows). Then set
# tools::CURRENT in tests/src/tools.rs (its unit test compares it with these go.mod files), run
# `bash tests/env/kube-current.sh` and the suite.
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"

K8S="${1:?usage: $0 <k8s.io/kubernetes version, e.g. v1.37.2> [<etcd server version, e.g. v3.6.17>]}"
ETCD="${2:-}"
case "$K8S" in v1.*.*) ;; *) log "expected a k8s.io/kubernetes version like v1.37.2, got $K8S"; exit 2 ;; esac
STAGING="v0.${K8S#v1.}"
GO="$(modern_go "$HERE/kube-current/go.mod")"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

# k8s.io/kubernetes's go.mod names its staging modules in its replace block (=> ./staging/src/k8s.io/...).
UPSTREAM="$("$GO" mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[ -f "$UPSTREAM" ] || { log "the Go module proxy has no go.mod for k8s.io/kubernetes@$K8S"; exit 1; }
GOVER="$(sed -n 's/^go //p' "$UPSTREAM")"
{
  printf 'module outpost.test/kube-current\n\ngo %s\n\n' "$GOVER"
  printf '// kube-apiserver and kubectl for tests/env/kube-current.sh; rewritten by tests/env/pin-current.sh.\n'
  printf 'tool (\n\tk8s.io/kubernetes/cmd/kube-apiserver\n\tk8s.io/kubernetes/cmd/kubectl\n)\n\n'
  printf 'require k8s.io/kubernetes %s\n\n' "$K8S"
  printf '// k8s.io/kubernetes requires its staging modules at v0.0.0: use the published ones of the same release.\n'
  printf 'replace (\n'
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$UPSTREAM" | sort -u |
    awk -v v="$STAGING" '{ printf "\t%s => %s %s\n", $1, $1, v }'
  printf ')\n'
} >"$HERE/kube-current/go.mod"
rm -f "$HERE/kube-current/go.sum"
(cd "$HERE/kube-current" && "$GO" mod tidy)
log "kube-current pinned to k8s.io/kubernetes $K8S (staging $STAGING, go $GOVER)"

if [ -n "$ETCD" ]; then
  (cd "$HERE/etcd-current" && "$GO" get "go.etcd.io/etcd/server/v3@$ETCD" && "$GO" mod tidy)
  log "etcd-current pinned to go.etcd.io/etcd/server/v3 $ETCD"
fi
log "now set tools::CURRENT in tests/src/tools.rs to match, and run bash tests/env/kube-current.sh"
