# Everyday commands. `make test` is what CI runs.
.PHONY: fmt lint test bench fuzz build static image codegen

build:
	cargo build --release -p speil

# The statically linked, stripped binary for the container image.
static:
	./scripts/build-static.sh

# The container image as an OCI archive (needs buildah); see docs/install.md.
image:
	./scripts/image.sh speil.tar

# Regenerate the committed gRPC code after changing a .proto file in crates/containerd-api/proto.
codegen:
	cargo xtask codegen

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test:
	./scripts/test.sh

bench:
	./bench/run.sh

# Every fuzz target under AFL++ for FUZZ_SECONDS (default 60) each; see docs/fuzzing.md.
fuzz:
	./bench/fuzz.sh
