#!/usr/bin/env bash
# Fetches Debian trixie's kubectl (1.32.x) into the cache without touching the system's apt setup: a
# temporary apt configuration whose only source is this machine's own Debian source with suite `trixie`.
# Prints the path of the kubectl binary on its last line. Safe to re-run.
source "$(dirname "$0")/lib.sh"

DEST="$OUTPOST_TEST_CACHE/kubectl-trixie"
if [ -x "$DEST/usr/bin/kubectl" ]; then
  log "kubectl cached at $DEST/usr/bin/kubectl"
  echo "$DEST/usr/bin/kubectl"
  exit 0
fi
apt_install dpkg-dev

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/sources.list.d" "$TMP/lists/partial" "$TMP/archives/partial"
derived_source deb trixie >"$TMP/sources.list.d/trixie.sources"
touch "$TMP/status"
APT_OPTS=(
  -o "Dir::Etc::sourcelist=/dev/null"
  -o "Dir::Etc::sourceparts=$TMP/sources.list.d"
  -o "Dir::State::Lists=$TMP/lists"
  -o "Dir::State::status=$TMP/status"
  -o "Dir::Cache::archives=$TMP/archives"
  -o "APT::Architecture=$(dpkg --print-architecture)"
  -o "APT::Sandbox::User=root"
)
log "fetching kubectl from Debian trixie"
apt-get "${APT_OPTS[@]}" update -qq
(cd "$TMP" && apt-get "${APT_OPTS[@]}" download -qq kubectl)
rm -rf "$DEST.tmp"
dpkg -x "$TMP"/kubectl_*.deb "$DEST.tmp"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
"$DEST/usr/bin/kubectl" version --client >&2
echo "$DEST/usr/bin/kubectl"
