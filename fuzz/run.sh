#!/usr/bin/env bash
# The fuzz targets of fuzz/ under cargo-fuzz (libFuzzer), on the stable toolchain.
#   run.sh ci            `make fuzz-ci`: replay every committed corpus, then fuzz each target FUZZ_CI_SECONDS (20)
#   run.sh fuzz [secs]   `make fuzz`: fuzz each target secs seconds (FUZZ_SECONDS, default 300)
# FUZZ_TARGETS="manifest url" picks targets (default: all). cargo-fuzz's libFuzzer flags need nightly features:
# RUSTC_BOOTSTRAP=1 unlocks them on stable, and `-s none` leaves out AddressSanitizer (our crates forbid unsafe
# code; panics, hangs and memory blow-ups are what we look for). The instrumented build gets its own target
# directory outside the repository (OUTPOST_FUZZ_TARGET_DIR, default $CARGO_TARGET_DIR/fuzz, else the test
# cache), as do the inputs libFuzzer finds and the crashes it saves: the committed corpora only grow by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/env/lib.sh

mode="${1:-fuzz}"
PATH="$(bash tests/env/cargo-fuzz.sh | tail -1):$PATH"
export RUSTC_BOOTSTRAP=1
work="${OUTPOST_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$OUTPOST_TEST_CACHE}/fuzz}"
targets="${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}"
flags=(--fuzz-dir fuzz -s none --target-dir "$work")
# A hang is an input that takes 10 s; libFuzzer's own default is 20 minutes.
libfuzzer=(-timeout=10 -print_final_stats=0)

case "$mode" in
  ci) seconds="${FUZZ_CI_SECONDS:-20}" ;;
  fuzz) seconds="${2:-${FUZZ_SECONDS:-300}}" ;;
  *) log "usage: $0 ci|fuzz [seconds]"; exit 2 ;;
esac

log "building fuzz targets into $work"
# cargo-fuzz has no --locked: check fuzz/Cargo.lock is current before it may rewrite it.
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
  log "fuzz/Cargo.lock is out of date: refresh it from the main lockfile (README.md, Fuzzing)"
  exit 1
fi
cargo fuzz build "${flags[@]}"
# libFuzzer prints a line per new path: keep that in a log, show its summary, and its end on a crash.
fuzz_run() {
  local target="$1" what="$2" log_file="$work/logs/$1.log"
  shift 2
  log "$target: $what"
  if ! cargo fuzz run "${flags[@]}" "$target" "$@" >"$log_file" 2>&1; then
    tail -n 60 "$log_file"
    log "$target failed (whole log: $log_file). A crash input is in $work/artifacts/$target/: add it to"
    log "fuzz/corpus/$target/ as crash-<what> and fix the code with a unit test next to it (README.md, Fuzzing)."
    exit 1
  fi
  grep -E '^(#[0-9]+[[:space:]]+INITED|Done )' "$log_file" | tail -n 1 >&2
}
mkdir -p "$work/logs"
for target in $targets; do
  found="$work/found/$target" artifacts="$work/artifacts/$target/"
  mkdir -p "$found" "$artifacts"
  if [ "$mode" = ci ]; then
    fuzz_run "$target" "replaying fuzz/corpus/$target" "fuzz/corpus/$target" -- "${libfuzzer[@]}" -runs=0 \
      -artifact_prefix="$artifacts"
  fi
  fuzz_run "$target" "fuzzing ${seconds}s (new inputs in $found)" "$found" "fuzz/corpus/$target" -- \
    "${libfuzzer[@]}" -max_total_time="$seconds" -artifact_prefix="$artifacts"
done
