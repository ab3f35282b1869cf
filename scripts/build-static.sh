#!/usr/bin/env bash
# Builds a statically linked, stripped release binary of speil (glibc with crt-static) for the
# container image, and prints its path and size.
#
#   ./scripts/build-static.sh        # prints: <path> <bytes> bytes (<MiB> MiB)
#
# The binary is for the machine's own architecture (x86_64-unknown-linux-gnu here; the release
# workflow runs it on an arm64 machine for arm64). The target is named explicitly all the same,
# so that RUSTFLAGS apply to speil only: build scripts and proc-macros are built without
# crt-static, as they must be.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=$(rustc -vV | sed -n 's/^host: //p')
if [[ $TARGET != *-unknown-linux-gnu ]]; then
    echo "build-static.sh: builds on *-unknown-linux-gnu hosts only, this one is $TARGET" >&2
    exit 1
fi

RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --profile static --target "$TARGET" -p speil >&2

target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/$TARGET/static/speil"

# A dynamically linked binary would not start in a FROM scratch image: refuse it here.
# (ldd prints "statically linked" or "not a dynamic executable" for a static one.)
if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "build-static.sh: $bin is dynamically linked:" >&2
    ldd "$bin" >&2
    exit 1
fi

size=$(stat -c %s "$bin")
echo "$bin $size bytes ($(awk "BEGIN { printf \"%.1f\", $size / 1048576 }") MiB)"
