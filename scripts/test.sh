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
PACKAGES=(containerd runc skopeo curl dnsmasq-base chromium buildah iproute2 python3-venv docker-registry jq)

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

# containerd 2.x beside Debian's 1.6: built once from its Go module into a cache outside the
# repository (scripts/containerd2.sh); every containerd test runs on both. Under CI a failed
# build fails the run; elsewhere the 2.x tests then say loudly that they skipped.
echo "==> containerd 2.x (scripts/containerd2.sh)"
if SPEIL_CONTAINERD2_BIN=$(./scripts/containerd2.sh); then
    export SPEIL_CONTAINERD2_BIN
else
    echo "==> containerd 2.x could not be built" >&2
    [[ ${CI:-} == true ]] && exit 1
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

# The Helm chart's tests (charts/speil/tests): Helm v4 as a Python library renders and lints the
# chart offline, and the rendered env is checked against this workspace's own binary. They run
# before cargo's tests, so cargo's summary stays the last line; a failure stops the script.
echo "==> chart tests (pytest)"
# speil-test-support: gen-layout and rogue-flood, which the benchmarks' quick modes run below.
cargo build -p speil -p speil-test-support --locked --quiet
venv=${XDG_CACHE_HOME:-$HOME/.cache}/speil-venv
requirements=charts/speil/tests/requirements.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi
SPEIL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/speil" "$venv/bin/python" -m pytest -q -p no:cacheprovider charts/speil/tests
# The chart-driven cluster test (crates/speil/tests/it/chart.rs) renders with the same Helm.
export SPEIL_CHART_PYTHON="$venv/bin/python"

# The cluster benchmark's quick mode (bench/cluster/run.sh --quick): three nodes in network
# namespaces, each with its own containerd and Speil, one small image pulled through the CRI.
# It asserts that every pull succeeded and that with Speil the upstream served the image once
# per rolling update, never a time. It takes the debug build made above (no release build).
echo "==> cluster benchmark, quick mode (bench/cluster/run.sh --quick)"
if [[ $(id -u) == 0 ]]; then
    ./bench/cluster/run.sh --quick
else
    echo "==> skipped: the cluster benchmark needs root (network namespaces)" >&2
    [[ ${CI:-} == true ]] && exit 1
fi

# Every other benchmark's quick mode (bench/run.sh --quick): small sizes, few nodes, the debug
# binaries built above (BENCH_BIN_DIR; nothing in release). bench/fuzz.sh --quick builds the
# workspace's tests (`cargo test --workspace --no-run`), the build the tests below then reuse.
# Each asserts what its full run claims (every request answered 2xx, every lookup found its
# holder, every digest right), never a time.
echo "==> benchmarks, quick modes (bench/run.sh --quick)"
if [[ $(id -u) == 0 ]]; then
    BENCH_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug" ./bench/run.sh --quick
else
    echo "==> skipped: the benchmarks' quick modes need root (containerd, dnsmasq on port 53)" >&2
    [[ ${CI:-} == true ]] && exit 1
fi

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests; they run first so nextest's summary is the last line.
    cargo test --workspace --locked --doc --quiet
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi
