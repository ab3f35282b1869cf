# Shared by the benchmark scripts: a scratch directory, processes that are always stopped (by
# pid, never by name), and small measuring helpers. Source it; do not run it.

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

# Requests per second of GET with wrk, 64 connections for 10 s; extra arguments go to wrk.
# Fails when any response was not a 2xx.
rps_get() {
    local out
    out=$("${CLIENT_CPU[@]}" wrk -t2 -c64 -d10s "$@")
    if grep -q "Non-2xx" <<<"$out"; then echo "bench: wrk saw errors: $out" >&2; exit 1; fi
    awk '/^Requests\/sec/ {print $2}' <<<"$out"
}

# Requests per second of HEAD with ab (keep-alive), 64 connections for 10 s. wrk cannot measure
# HEAD: its parser does not know the request was HEAD and waits for a body that never comes.
rps_head() {
    local out
    out=$("${CLIENT_CPU[@]}" ab -q -k -i -c 64 -t 10 -n 10000000 "$@" 2>&1)
    if ! grep -q "^Failed requests: *0$" <<<"$out" || grep -q "Non-2xx" <<<"$out"; then
        echo "bench: ab saw errors: $out" >&2; exit 1
    fi
    awk '/^Requests per second/ {print $4}' <<<"$out"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
gbps() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == ">=" ? v >= t : v <= t); print (ok ? "ok" : "MISSED") }'; }
