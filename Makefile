# Two commands on a fresh Debian machine (see README.md):
#   make demo   — local API server + Git server + agent, with the example repository applied
#   make test   — everything CI runs
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup test lint unit e2e demo bench clean-cache

setup:
	bash tests/env/setup.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) deny check licenses bans

# Integration tests run in one binary with libtest (not nextest) so the API server starts once.
test: setup lint
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --workspace --locked

demo: setup
	$(CARGO) build --workspace --bins --locked
	$(CARGO) run --quiet --locked -p outpost-tests --bin outpost-demo

# Benchmark against kubectl 1.32 on a fresh local API server (release build; prints a table, asserts nothing).
bench: setup
	$(CARGO) build --release --workspace --bins --locked
	$(CARGO) run --release --quiet --locked -p outpost-tests --bin outpost-bench

clean-cache:
	rm -rf $${OUTPOST_TEST_CACHE:-$$HOME/.cache/outpost-test}
