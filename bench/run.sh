#!/usr/bin/env bash
# Every benchmark, one after the other. Results are recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")"
./registry.sh
./abuse.sh
./p2p.sh
./mirror.sh
./containerd.sh
./health.sh
./fuzz.sh
