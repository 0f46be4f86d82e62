# Two commands on a fresh Debian machine (see README.md):
#   make demo   — local API server + Git server + agent, with the example repository applied
#   make test   — everything CI runs
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup test lint unit e2e demo bench clean-cache

# Every CI phase prints how long it took (bash's `time`).
setup:
	time bash tests/env/setup.sh

lint:
	time $(CARGO) fmt --all -- --check
	time $(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	time $(CARGO) deny check licenses bans

# Status files the e2e tests read from Git, recorded for the Go oracle (tests/src/oracle.rs, tests/oracles).
export OUTPOST_STATUS_CORPUS ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/status-corpus

# Integration tests run in one binary with libtest (not nextest) so the API server starts once. Then the Go
# oracles judge what they recorded: rsync's YAML 1.1 reading of every status file (corpus cleared first).
test: setup lint
	bash tests/oracles/run.sh clear
	time $(CARGO) build --workspace --bins --locked
	time $(CARGO) test --workspace --locked
	bash tests/oracles/run.sh test

demo: setup
	$(CARGO) build --workspace --bins --locked
	$(CARGO) run --quiet --locked -p outpost-tests --bin outpost-demo

# Benchmark against kubectl 1.32 on a fresh local API server (release build; prints a table, asserts nothing).
bench: setup
	$(CARGO) build --release --workspace --bins --locked
	$(CARGO) run --release --quiet --locked -p outpost-tests --bin outpost-bench

clean-cache:
	rm -rf $${OUTPOST_TEST_CACHE:-$$HOME/.cache/outpost-test}
