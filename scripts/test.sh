#!/usr/bin/env bash
# Speil's whole test suite, on a fresh Debian machine: installs the Debian packages the tests use
# (when run as root), checks formatting and lints with warnings as errors, builds the static
# binary the image test puts in the container image, then runs every test.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -E 'test(skopeo)'   # extra arguments go to cargo nextest
set -euo pipefail
cd "$(dirname "$0")/.."

# Programs the tests run for real, by Debian package.
PACKAGES=(containerd runc skopeo curl dnsmasq-base chromium buildah iproute2)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
        echo "==> installing test prerequisites: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "==> missing test prerequisites: ${missing[*]}; run as root to install them" >&2
        [[ ${CI:-} == true ]] && exit 1
    fi
fi

# Building needs nothing but Rust: any attempt to run protoc fails the run.
export PROTOC=/bin/false

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The image test builds the container image around the static binary; build it once here.
echo "==> static binary (scripts/build-static.sh)"
SPEIL_STATIC_BINARY=$(./scripts/build-static.sh | cut -d' ' -f1)
export SPEIL_STATIC_BINARY

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests; they run first so nextest's summary is the last line.
    cargo test --workspace --locked --doc --quiet
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi
