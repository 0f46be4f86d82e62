# Two commands on a fresh Debian machine (see README.md):
#   make demo   — local API server + Git server + agent, with the example repository applied
#   make test   — everything CI runs
#   make fuzz   — the fuzz targets of fuzz/ for FUZZ_SECONDS (300) each (README.md, Fuzzing)
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup test lint unit e2e demo bench clean-cache fuzz fuzz-ci

# Every CI phase prints how long it took (bash's `time`).
setup:
	time bash tests/env/setup.sh

lint:
	time $(CARGO) fmt --all -- --check
	time $(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	time $(CARGO) deny check licenses bans
	time python3 .ci/architecture.py agent/src status-writer/src

# Status files the e2e tests read from Git, recorded for the Go oracle (tests/src/oracle.rs, tests/oracles).
export OUTPOST_STATUS_CORPUS ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/status-corpus

# The compatibility part of the integration suite, run again on Kubernetes 1.20 because edge fleets lag: the
# environment itself (foundation), sync and prune with kubectl's ApplySet check (sync), prune safety, drift and
# health (daemon, and health_oracle: kstatus judges both versions), the status writer (status) and EMCO's hooks
# (emco), inventories shared by clusters and their migration (inventories), leader election (leader), adoption
# of objects other tools created (adoption), inventory formats (upgrade) and operator controls (controls).
# libtest takes several name filters.
COMPAT_KUBE_VERSION ?= 1.20
COMPAT_TESTS ?= foundation:: sync:: safety:: daemon:: status:: emco:: health_oracle:: inventories:: leader:: adoption:: upgrade:: controls::

# Integration tests run in one binary with libtest (not nextest) so the API server starts once: the whole suite
# on the current Kubernetes (tests/src/tools.rs), then its compatibility part on 1.20. Then the Go oracles judge
# what both recorded: rsync's YAML 1.1 reading of every status file (corpus cleared first).
test: setup lint
	bash tests/oracles/run.sh clear
	time $(CARGO) build --workspace --bins --examples --locked
	time $(CARGO) test --workspace --locked
	$(MAKE) fuzz-ci
	time OUTPOST_TEST_KUBE_VERSION=$(COMPAT_KUBE_VERSION) $(CARGO) test --locked -p outpost-tests --test e2e -- $(COMPAT_TESTS)
	bash tests/oracles/run.sh test

# libFuzzer through cargo-fuzz on the stable toolchain (fuzz/run.sh says how): `fuzz` searches for FUZZ_SECONDS
# per target; `fuzz-ci` (in `test`) replays the committed corpora, then fuzzes each target FUZZ_CI_SECONDS (20).
FUZZ_SECONDS ?= 300
fuzz:
	time bash fuzz/run.sh fuzz $(FUZZ_SECONDS)

fuzz-ci:
	time bash fuzz/run.sh ci

demo: setup
	$(CARGO) build --workspace --bins --locked
	$(CARGO) run --quiet --locked -p outpost-tests --bin outpost-demo

# Benchmark against kubectl on a fresh local API server (release build; prints a table, asserts nothing).
# The current Kubernetes with the kubectl built from the same release by default; OUTPOST_TEST_KUBE_VERSION=1.20
# make bench for the old one, with Debian trixie's kubectl 1.32.
bench: setup
	$(CARGO) build --release --workspace --bins --locked
	$(CARGO) build --profile dist -p outpost --locked
	$(CARGO) run --release --quiet --locked -p outpost-tests --bin outpost-bench

clean-cache:
	rm -rf $${OUTPOST_TEST_CACHE:-$$HOME/.cache/outpost-test}
