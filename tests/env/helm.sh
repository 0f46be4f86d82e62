#!/usr/bin/env bash
# Installs the Helm v4 engine for the chart tests: PyPI's helm_python_sdk (Helm's Go SDK behind a C ABI, no helm
# binary) in a virtualenv in the cache. Prints the virtualenv's python on its last line. Safe to re-run.
source "$(dirname "$0")/lib.sh"

VENV="$OUTPOST_TEST_CACHE/helm-venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import helm_python" 2>/dev/null; then
  log "helm_python_sdk cached in $VENV"
  echo "$VENV/bin/python"
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
  apt_install python3-venv
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check helm_python_sdk PyYAML
"$VENV/bin/python" -c "import helm_python as h; print('helm SDK', h.helm_sdk_version())" >&2
echo "$VENV/bin/python"
