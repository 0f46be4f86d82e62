#!/usr/bin/env bash
# The compatibility version (OUTPOST_TEST_KUBE_VERSION=1.20): installs Debian's etcd and builds kube-apiserver
# 1.20.2 from Debian's `kubernetes` source package into the cache (about 5 minutes on 2 cores). The current
# version is kube-current.sh's.
# Prints the path of the kube-apiserver binary on its last line. Safe to re-run: a cached binary is reused.
# OUTPOST_TEST_KUBE_APISERVER / OUTPOST_TEST_ETCD point the tests at other binaries instead.
source "$(dirname "$0")/lib.sh"

K8S_VERSION=1.20.2
BIN="$OUTPOST_TEST_CACHE/kube-apiserver-$K8S_VERSION"

apt_install etcd-server
# etcd-server ships a systemd unit that may auto-start on port 2379; the tests run their own etcd on free
# ports, so a system one is harmless, but stop it if it was just started to keep the machine quiet.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  as_root systemctl stop etcd || true
fi

if [ -n "${OUTPOST_TEST_KUBE_APISERVER:-}" ]; then
  log "using OUTPOST_TEST_KUBE_APISERVER=$OUTPOST_TEST_KUBE_APISERVER"
  echo "$OUTPOST_TEST_KUBE_APISERVER"
  exit 0
fi
if [ -x "$BIN" ] && [ -s "$BIN" ]; then
  log "kube-apiserver $K8S_VERSION cached at $BIN"
  echo "$BIN"
  exit 0
fi

apt_install golang-1.19-go golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev make

# deb-src for this release, derived from the machine's own source.
SRC_LIST=/etc/apt/sources.list.d/outpost-deb-src.sources
if [ ! -f "$SRC_LIST" ]; then
  log "enabling deb-src from the machine's Debian source"
  derived_source deb-src "$(codename)" | as_root tee "$SRC_LIST" >/dev/null
  as_root apt-get update -qq
fi

BUILD="$OUTPOST_TEST_CACHE/build"
mkdir -p "$BUILD"
cd "$BUILD"
# Debian names the tree kubernetes-1.20.5+really1.20.2: match on the real version at the end.
find_src() {
  local d
  for d in kubernetes-*"$K8S_VERSION"; do
    if [ -d "$d" ]; then echo "$d"; return 0; fi
  done
  return 0
}
SRC_DIR="$(find_src)"
if [ -z "$SRC_DIR" ] || [ ! -d "$SRC_DIR/vendor" ]; then
  rm -rf kubernetes-* kubernetes_*
  log "downloading Debian's kubernetes sources"
  apt-get -o APT::Sandbox::User=root source -qq kubernetes >/dev/null 2>&1
  SRC_DIR="$(find_src)"
  [ -n "$SRC_DIR" ] && [ -d "$SRC_DIR/vendor" ] || { log "Debian's kubernetes source is not $K8S_VERSION with vendor/"; exit 1; }
fi
cd "$SRC_DIR"

# reflect2 1.0.1 crashes under Go >= 1.18 (SIGSEGV in mapiterinit on the first custom-resource write):
# swap in Debian's 1.0.2 sources.
R2=vendor/github.com/modern-go/reflect2
R2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
if ! cmp -s "$R2_SRC/reflect2.go" "$R2/reflect2.go"; then
  log "replacing vendored reflect2 with Debian's $R2_SRC"
  rm -rf "$R2"
  mkdir -p "$R2"
  cp "$R2_SRC"/*.go "$R2"/
  cp "$R2_SRC"/*.s "$R2"/ 2>/dev/null || true
  rm -f "$R2"/*_test.go
fi

# Kubernetes 1.20 builds only with Debian's Go 1.19 (golang-go on bookworm); a newer Go first on PATH
# (e.g. /usr/local/go) fails the build, so put Debian's toolchain first explicitly.
GO119=/usr/lib/go-1.19/bin
[ -x "$GO119/go" ] || { log "Debian's Go 1.19 is missing at $GO119 (package golang-1.19-go)"; exit 1; }
export PATH="$GO119:$PATH"
export GOTOOLCHAIN=local GOFLAGS=
log "building with $("$GO119/go" version)"

mkdir -p .go/src/k8s.io
[ -e .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
# A 0-byte binary from an interrupted build makes the next build fail with "Permission denied".
rm -rf _output
log "building kube-apiserver (about 5 minutes on 2 cores)"
GOPATH="$PWD/.go" CGO_ENABLED=0 make WHAT=cmd/kube-apiserver >build.log 2>&1 || {
  tail -40 build.log >&2
  log "kube-apiserver build failed; full log: $PWD/build.log"
  exit 1
}
OUT="$(find _output -type f -name kube-apiserver -perm -u+x | head -1)"
[ -s "$OUT" ] || { log "build produced no kube-apiserver"; exit 1; }
cp "$OUT" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
log "kube-apiserver built: $BIN"
echo "$BIN"
