#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The mirror benchmark: node A (127.78.0.1) holds the content, node B (127.78.0.2) holds nothing
# and serves it from A through the DHT, verifying every byte. Throughput of a 1 GiB blob through
# B, through a tuned nginx reverse proxy in front of A (127.78.0.3, the reference: a forwarding
# hop that verifies nothing) and straight from A, with the CPU-seconds per GiB the forwarding
# process spends (B, nginx); time to first byte of mirrored manifests; B's resident memory while
# it streams 32 different blobs at once.
#
#   bench/mirror.sh           (as root, to install curl and nginx) the full run, release build
#   bench/mirror.sh --quick   small sizes, the debug build; asserts that every download completed
#                             and matched its digest, never a time
#   SPEIL_BIN=/other/speil bench/mirror.sh    another build, e.g. one from before a change
# CARGO_TARGET_DIR is honoured.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

QUICK=false
[[ ${1:-} == --quick ]] && QUICK=true
if $QUICK; then
    BIG_SIZE=8MiB MANY_SIZE=1MiB MANY_COUNT=8 SMALL_COUNT=5 RUNS=1 TTFB_ROUNDS=1 RATE=2M
else
    BIG_SIZE=1GiB MANY_SIZE=16MiB MANY_COUNT=32 SMALL_COUNT=50 RUNS=5 TTFB_ROUNDS=10 RATE=4M
fi

need curl curl
need python3 python3
need nginx nginx
need sha256sum coreutils

# The nodes, nginx and the client share the two cores; nothing is pinned.
SERVER_CPU=()
CLIENT_CPU=()
A=127.78.0.1
B=127.78.0.2
NGINX=127.78.0.3

bins "$QUICK" speil speil-test-support
SPEIL=${SPEIL_BIN:-$BIN/speil}
GEN=$BIN/gen-layout

echo "==> generating content on node A ($BIG_SIZE layer, $MANY_COUNT x $MANY_SIZE layers, $SMALL_COUNT small images)"
"$GEN" "$SCRATCH/a" image example.com/bench/big:1 "$BIG_SIZE" >/dev/null
mapfile -t SIZES < <(for _ in $(seq 1 "$MANY_COUNT"); do echo "$MANY_SIZE"; done)
"$GEN" "$SCRATCH/a" image example.com/bench/many:1 "${SIZES[@]}" >/dev/null
for i in $(seq 1 "$SMALL_COUNT"); do "$GEN" "$SCRATCH/a" image "example.com/bench/small-$i:1" 1KiB >/dev/null; done
"$GEN" "$SCRATCH/b" blob 1 >/dev/null

layers_of() { # layers_of TAG: the layer digests of an image on node A
    python3 - "$SCRATCH/a" "$1" <<'PY'
import json, sys
root, name = sys.argv[1], sys.argv[2]
for m in json.load(open(f"{root}/index.json"))["manifests"]:
    if m.get("annotations", {}).get("io.containerd.image.name") == name:
        manifest = json.load(open(f"{root}/blobs/sha256/{m['digest'][7:]}"))
        for layer in manifest["layers"]:
            print(layer["digest"])
PY
}
BIG=$(layers_of example.com/bench/big:1)
MANY=$(layers_of example.com/bench/many:1)
BIG_BYTES=$(stat -c %s "$SCRATCH/a/blobs/sha256/${BIG#sha256:}")

start "$SCRATCH/a.log" "$SPEIL" run --oci-dir "$SCRATCH/a" --registry-addr $A:5000 \
    --metrics-addr $A:9090 --router-addr $A:5001 --log-level warn
start "$SCRATCH/b.log" "$SPEIL" run --oci-dir "$SCRATCH/b" --registry-addr $B:5000 \
    --metrics-addr $B:9090 --router-addr $B:5001 --log-level warn \
    --bootstrap-kind static --static-bootstrap-peers /ip4/$A/tcp/5001
B_PID=$STARTED

# The reference, tuned as a user would tune nginx to proxy large blobs: proxy_buffering on with
# 64 KiB buffers (8 of them, so a slow client does not stall the upstream read at once),
# proxy_max_temp_file_size 0 so the body never spills to disk, HTTP/1.1 and a keepalive pool to
# the upstream, access_log off, one worker (a single stream is served by one worker whatever
# worker_processes says). sendfile does not apply to proxied bodies. It verifies nothing.
chmod 755 "$SCRATCH" # nginx workers run as www-data
mkdir -p "$SCRATCH/nginx"
cat >"$SCRATCH/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $SCRATCH/nginx/nginx.pid;
error_log $SCRATCH/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    upstream node_a { server $A:5000; keepalive 16; }
    server {
        listen $NGINX:5000;
        location / {
            proxy_pass http://node_a;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_buffer_size 64k;
            proxy_buffers 8 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
        }
    }
}
CONF
start "$SCRATCH/nginx.log" nginx -c "$SCRATCH/nginx/nginx.conf"
NGINX_PID=$STARTED

wait_http "http://$B:5000/v2/"
wait_http "http://$NGINX:5000/v2/"
# Every nginx process, master and worker(s), counts as the forwarding process.
mapfile -t NGINX_PIDS < <(echo "$NGINX_PID"; ps -o pid= --ppid "$NGINX_PID" | tr -d ' ')
# Until B finds A's records (published 8 at a time).
for _ in $(seq 1 200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$B:5000/v2/bench/small-$SMALL_COUNT/manifests/1?ns=example.com") == 200 ]] && break
    sleep 0.1
done

# Failures are noted in a file: some are found in subshells.
: >"$SCRATCH/failed"
fail() { echo "$*" >>"$SCRATCH/failed"; echo "    FAILED: $*" >&2; }

cpu_ticks() { # cpu_ticks PID...: utime + stime of those processes (all their threads), in ticks
    local pid total=0
    for pid; do
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}

fetch() { # fetch URL: bytes per second of one download of the big blob, checked (size, digest)
    local out=/dev/null w rc=0 speed size
    $QUICK && out=$SCRATCH/download
    w=$(curl -sf -o "$out" -w '%{speed_download} %{size_download}' "$1") || rc=$?
    read -r speed size <<<"$w"
    if ((rc != 0)) || [[ $size != "$BIG_BYTES" ]]; then
        fail "$1: the download did not complete (curl exit $rc, $size of $BIG_BYTES bytes)"
    elif $QUICK && [[ sha256:$(sha256sum "$out" | cut -d' ' -f1) != "$BIG" ]]; then
        fail "$1: the bytes do not match $BIG"
    fi
    echo "${speed:-0}"
}

TICKS=$(getconf CLK_TCK)
declare -A RUNS_OF TICKS_OF
timed() { # timed NAME URL PID...: one download of the big blob, its speed and the PIDs' CPU ticks noted
    local name=$1 url=$2 before after speed
    shift 2
    before=$(cpu_ticks "$@")
    speed=$(fetch "$url")
    after=$(cpu_ticks "$@")
    RUNS_OF[$name]+="$speed "
    TICKS_OF[$name]=$((${TICKS_OF[$name]:-0} + after - before))
}
cpu_per_gib() { # cpu_per_gib NAME: CPU-seconds per GiB over that name's runs
    awk -v t="${TICKS_OF[$1]}" -v hz="$TICKS" -v n="$RUNS" -v b="$BIG_BYTES" \
        'BEGIN { printf "%.2f", t / hz / (n * b / 1073741824) }'
}

echo "==> $BIG_SIZE blob: curl, median of $RUNS, alternating B, nginx, A"
cat "$SCRATCH/a/blobs/sha256/${BIG#sha256:}" >/dev/null
PATH_BIG="/v2/bench/big/blobs/$BIG?ns=example.com"
for _ in $(seq 1 "$RUNS"); do
    timed speil "http://$B:5000$PATH_BIG" "$B_PID"
    timed nginx "http://$NGINX:5000$PATH_BIG" "${NGINX_PIDS[@]}"
    timed direct "http://$A:5000$PATH_BIG"
done
M_BLOB=$(tr ' ' '\n' <<<"${RUNS_OF[speil]}" | grep . | median)
N_BLOB=$(tr ' ' '\n' <<<"${RUNS_OF[nginx]}" | grep . | median)
D_BLOB=$(tr ' ' '\n' <<<"${RUNS_OF[direct]}" | grep . | median)
echo "    through B     (B/s): ${RUNS_OF[speil]}"
echo "    through nginx (B/s): ${RUNS_OF[nginx]}"
echo "    from A        (B/s): ${RUNS_OF[direct]}"

echo "==> mirrored manifests: time to first byte through B, $((TTFB_ROUNDS * SMALL_COUNT)) requests over $SMALL_COUNT images"
: >"$SCRATCH/ttfb"
ttfb() { # ttfb URL FILE: appends the time to first byte of a GET that must succeed
    curl -sf -o /dev/null -w '%{time_starttransfer}\n' "$1" >>"$2" || fail "$1: no manifest"
}
for round in $(seq 1 "$TTFB_ROUNDS"); do
    for i in $(seq 1 "$SMALL_COUNT"); do
        ttfb "http://$B:5000/v2/bench/small-$i/manifests/1?ns=example.com" "$SCRATCH/ttfb"
    done
    # The first round of each pass resolves through the DHT; later ones may hit the 5 s cache.
    if ((round % 2 == 0 && round < TTFB_ROUNDS)); then sleep 5.5; fi
done
# The value at quantile Q of the sorted times in seconds, in ms (the first when there are few).
quantile() { awk -v q="$1" '{ v[NR] = $1 * 1000 } END { i = int(NR * q); if (i < 1) i = 1; printf "%.2f", v[i] }'; }
TTFB_P50=$(sort -n "$SCRATCH/ttfb" | quantile 0.5)
TTFB_P99=$(sort -n "$SCRATCH/ttfb" | quantile 0.99)
# The same through A, which holds them: the cost of the extra hop.
: >"$SCRATCH/ttfb-direct"
for i in $(seq 1 "$SMALL_COUNT"); do
    ttfb "http://$A:5000/v2/bench/small-$i/manifests/1?ns=example.com" "$SCRATCH/ttfb-direct"
done
DIRECT_P50=$(sort -n "$SCRATCH/ttfb-direct" | quantile 0.5)

echo "==> $MANY_COUNT concurrent pulls of different $MANY_SIZE blobs through B"
declare -A PULLS
mkdir -p "$SCRATCH/many"
for d in $MANY; do
    out=/dev/null
    $QUICK && out=$SCRATCH/many/${d#sha256:}
    curl -sf --limit-rate "$RATE" -o "$out" "http://$B:5000/v2/bench/many/blobs/$d?ns=example.com" &
    PULLS[$!]=$d
done
PEAK=0
while kill -0 "${!PULLS[@]}" 2>/dev/null; do
    r=$(rss_kib "$B_PID")
    ((r > PEAK)) && PEAK=$r
    sleep 0.2
done
ok=0
for p in "${!PULLS[@]}"; do
    d=${PULLS[$p]}
    if ! wait "$p"; then
        fail "concurrent pull of $d did not complete"
    elif $QUICK && [[ sha256:$(sha256sum "$SCRATCH/many/${d#sha256:}" | cut -d' ' -f1) != "$d" ]]; then
        fail "concurrent pull of $d does not match its digest"
    else
        ok=$((ok + 1))
    fi
done

# Quick mode asserts what held, not timings: a debug build's figures mean nothing.
if $QUICK; then verdict() { echo "-"; }; fi
echo
printf '%-50s %10s %10s %8s %10s %s\n' "measure" "speil" "reference" "ratio" "target" ""
row() { printf '%-50s %10s %10s %8s %10s %s\n' "$@"; }
row "$BIG_SIZE blob GB/s: through B vs through nginx" "$(gbps "$M_BLOB")" "$(gbps "$N_BLOB")" \
    "$(ratio "$M_BLOB" "$N_BLOB")" ">= 0.6" "$(verdict "$(ratio "$M_BLOB" "$N_BLOB")" 0.6 ">=")"
row "$BIG_SIZE blob GB/s: through B vs straight from A" "$(gbps "$M_BLOB")" "$(gbps "$D_BLOB")" \
    "$(ratio "$M_BLOB" "$D_BLOB")" "-" ""
row "forwarding CPU-s per GiB: B vs nginx" "$(cpu_per_gib speil)" "$(cpu_per_gib nginx)" \
    "$(ratio "$(cpu_per_gib speil)" "$(cpu_per_gib nginx)")" "<= 0.8" "$(verdict "$(cpu_per_gib speil)" 0.8 "<=")"
row "mirrored manifest TTFB p50, ms (vs from A)" "$TTFB_P50" "$DIRECT_P50" "-" "<= 5" "$(verdict "$TTFB_P50" 5 "<=")"
row "mirrored manifest TTFB p99, ms" "$TTFB_P99" "-" "-" "-" ""
row "B's RSS peak during $MANY_COUNT concurrent pulls, MiB" "$(mib "$PEAK")" "-" "-" "< 64" "$(verdict "$(mib "$PEAK")" 64 "<=")"
row "concurrent pulls completed" "$ok/$MANY_COUNT" "-" "-" "$MANY_COUNT/$MANY_COUNT" ""
echo "(speil $SPEIL; $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"

if [[ -s $SCRATCH/failed ]]; then
    echo "bench: $(wc -l <"$SCRATCH/failed") downloads failed:" >&2
    cat "$SCRATCH/failed" >&2
    exit 1
fi
if $QUICK; then
    echo "quick: every download through B, through nginx and from A completed and matched its digest ($RUNS x $BIG_SIZE each, $MANY_COUNT concurrent through B, $((TTFB_ROUNDS * SMALL_COUNT + SMALL_COUNT)) manifests)"
fi
