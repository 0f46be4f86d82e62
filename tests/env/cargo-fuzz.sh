#!/usr/bin/env bash
# Installs cargo-fuzz (a pinned version, from crates.io) into the cache, and the C++ compiler libfuzzer-sys
# builds libFuzzer with. Prints the directory holding the `cargo-fuzz` binary on its last line. Safe to re-run.
source "$(dirname "$0")/lib.sh"

CARGO_FUZZ_VERSION=0.13.2
ROOT="$OUTPOST_TEST_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
apt_install g++
if [ ! -x "$ROOT/bin/cargo-fuzz" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --quiet --version "$CARGO_FUZZ_VERSION" --root "$ROOT" cargo-fuzz
fi
echo "$ROOT/bin"
