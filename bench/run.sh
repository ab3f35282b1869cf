#!/usr/bin/env bash
# Every benchmark, one after the other. Results are recorded in docs/benchmarks.md.
#
#   bench/run.sh            # every full run (release builds; the better part of an hour)
#   bench/run.sh --quick    # every quick mode (what scripts/test.sh runs in CI), about 2 minutes
#
# Quick mode runs each script's `--quick` (small sizes, few nodes, debug binaries; each asserts
# what its full run claims, never a time; see each script's header) on one debug build: the
# binaries in BENCH_BIN_DIR when set (scripts/test.sh passes its own target/debug), otherwise
# built here once (`cargo build --locked -p speil -p speil-test-support`); SPEIL_BIN, when set,
# names another speil. It runs them all, prints each one's result and duration, and fails when
# any failed. bench/cluster/run.sh --quick is not among them: scripts/test.sh runs it itself.
# As root (private containerd, dnsmasq on port 53, packages installed by `need`).
set -euo pipefail
cd "$(dirname "$0")"

if [[ ${1:-} != --quick ]]; then
    ./registry.sh
    ./abuse.sh
    ./p2p.sh
    ./mirror.sh
    ./containerd.sh
    ./health.sh
    ./fuzz.sh
    exit 0
fi

if [[ -z ${BENCH_BIN_DIR:-} ]]; then
    echo "==> building speil, gen-layout and rogue-flood (debug)"
    cargo build -q --locked -p speil -p speil-test-support --manifest-path ../Cargo.toml
    BENCH_BIN_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}/debug
fi
SPEIL_BIN=${SPEIL_BIN:-$BENCH_BIN_DIR/speil}
export BENCH_BIN_DIR SPEIL_BIN

results=() failed=0
for script in registry abuse p2p mirror containerd health fuzz; do
    echo "==> bench/$script.sh --quick"
    began=$SECONDS
    if "./$script.sh" --quick; then status=ok; else status=FAILED; failed=1; fi
    results+=("$(printf '%-14s %-8s %4d s' "$script.sh" "$status" $((SECONDS - began)))")
done
echo
echo "quick modes:"
printf '  %s\n' "${results[@]}"
exit "$failed"
