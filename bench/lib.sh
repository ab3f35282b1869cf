# shellcheck shell=bash
# Shared by the benchmark scripts: a scratch directory, processes that are always stopped (by
# pid, never by name), the binaries to run, and small measuring helpers. Source it; do not run it.
#
# Quick modes (`bench/<script>.sh --quick`, which CI runs through `bench/run.sh --quick`): small
# sizes, few nodes, short load, the debug build; they assert what the full run claims (every
# request answered, every lookup found its holder) and never a time.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRATCH="$(mktemp -d /tmp/speil-bench.XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

need() { # need PROGRAM PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    if [[ $(id -u) == 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }
    else
        echo "bench: $1 is missing (Debian package $2); run as root to install it" >&2
        exit 1
    fi
}

# Servers run on CPU 0 and load generators on CPU 1, so each side has one core of its own and the
# figures do not depend on how the scheduler mixes them.
SERVER_CPU=(taskset -c 0)
CLIENT_CPU=(taskset -c 1)

fail() { echo "bench: $*" >&2; exit 1; }

# bins QUICK PACKAGE...: the directory of the binaries a benchmark runs, in $BIN. With
# BENCH_BIN_DIR set, its binaries are taken as they are and nothing is built (CI's debug build,
# or a copy of another build); otherwise cargo builds the packages: the release build for a
# measurement, the debug build (--locked, what CI builds) for a quick mode (QUICK=true).
# shellcheck disable=SC2034  # BIN is read by the scripts that source this
bins() {
    local quick=$1 target=${CARGO_TARGET_DIR:-$ROOT/target} packages=()
    shift
    for p in "$@"; do packages+=(-p "$p"); done
    if [[ -n ${BENCH_BIN_DIR:-} ]]; then
        BIN=$BENCH_BIN_DIR
    elif $quick; then
        echo "==> building $* (debug)"
        cargo build -q --locked "${packages[@]}" --manifest-path "$ROOT/Cargo.toml"
        BIN=$target/debug
    else
        echo "==> building $* (release)"
        cargo build --release -q "${packages[@]}" --manifest-path "$ROOT/Cargo.toml"
        BIN=$target/release
    fi
}

start() { # start LOGFILE CMD...: runs CMD on the server CPU in the background; pid in $STARTED
    local log=$1; shift
    "${SERVER_CPU[@]}" "$@" >"$log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

wait_http() { # wait_http URL: until it answers at all
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "$1" && return
        sleep 0.05
    done
    echo "bench: $1 did not come up" >&2
    exit 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# Bytes per second of one download of URL.
download() {
    "${CLIENT_CPU[@]}" curl -sf -o /dev/null -w '%{speed_download}' "$1"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The load of one measurement: 64 connections for 10 s (quick modes set less).
WRK_LOAD=(-t2 -c64 -d10s)
AB_LOAD=(-c 64 -t 10)

# wrk_checked ARGS...: wrk's output with $WRK_LOAD; fails unless it completed requests and every
# one was answered 2xx (no non-2xx answer, no socket error).
wrk_checked() {
    local out
    out=$("${CLIENT_CPU[@]}" wrk "${WRK_LOAD[@]}" "$@")
    if grep -q -e "Non-2xx" -e "Socket errors" <<<"$out" \
        || ! awk '/ requests in / { n = $1 } END { exit !(n > 0) }' <<<"$out"; then
        fail "wrk saw errors: $out"
    fi
    printf '%s\n' "$out"
}

# Requests per second of GET with wrk ($WRK_LOAD); extra arguments go to wrk. Fails when any
# request was not answered 2xx.
rps_get() {
    local out
    # `|| exit`: a command substitution does not inherit set -e, and this runs in one.
    out=$(wrk_checked "$@") || exit 1
    awk '/^Requests\/sec/ {print $2}' <<<"$out"
}

# Requests per second of HEAD with ab (keep-alive, $AB_LOAD). wrk cannot measure HEAD: its parser
# does not know the request was HEAD and waits for a body that never comes. Fails unless ab
# completed requests and every one was answered 2xx.
rps_head() {
    local out
    out=$("${CLIENT_CPU[@]}" ab -q -k -i "${AB_LOAD[@]}" -n 10000000 "$@" 2>&1) || fail "ab failed: $out"
    if ! grep -q "^Failed requests: *0$" <<<"$out" || grep -q "Non-2xx" <<<"$out" \
        || ! awk '/^Complete requests:/ { n = $3 } END { exit !(n > 0) }' <<<"$out"; then
        fail "ab saw errors: $out"
    fi
    awk '/^Requests per second/ {print $4}' <<<"$out"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
gbps() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
# A quick mode's figures are not measurements: it prints no verdict on them.
verdict() { ${QUICK:-false} && { echo "(quick)"; return; }; awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == ">=" ? v >= t : v <= t); print (ok ? "ok" : "MISSED") }'; }
