# Everyday commands. `make test` is what CI runs.
.PHONY: fmt lint test bench build

build:
	cargo build --release -p speil

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test:
	./scripts/test.sh

bench:
	./bench/run.sh
