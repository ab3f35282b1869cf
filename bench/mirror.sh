#!/usr/bin/env bash
# The mirror benchmark: node A (127.78.0.1) holds the content, node B (127.78.0.2) holds nothing
# and serves it from A through the DHT. Throughput of a 1 GiB blob through B against straight
# from A; time to first byte of mirrored manifests; B's resident memory while it streams 32
# different blobs at once.
#
#   bench/mirror.sh       (as root, to install curl)
source "$(dirname "$0")/lib.sh"

need curl curl
need python3 python3

# Both nodes and the client share the two cores; nothing is pinned.
SERVER_CPU=()
CLIENT_CPU=()
A=127.78.0.1
B=127.78.0.2

echo "==> building speil (release)"
cargo build --release -q -p speil -p speil-test-support --manifest-path "$ROOT/Cargo.toml"
SPEIL=${SPEIL_BIN:-$ROOT/target/release/speil}  # SPEIL_BIN: another build, e.g. one from before a change
GEN="$ROOT/target/release/gen-layout"

echo "==> generating content on node A (1 GiB layer, 32 x 16 MiB layers, 50 small images)"
"$GEN" "$SCRATCH/a" image example.com/bench/big:1 1GiB >/dev/null
SIZES=$(for _ in $(seq 1 32); do printf '16MiB '; done)
# shellcheck disable=SC2086
"$GEN" "$SCRATCH/a" image example.com/bench/many:1 $SIZES >/dev/null
for i in $(seq 1 50); do "$GEN" "$SCRATCH/a" image "example.com/bench/small-$i:1" 1KiB >/dev/null; done
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

start "$SCRATCH/a.log" "$SPEIL" run --oci-dir "$SCRATCH/a" --registry-addr $A:5000 \
    --metrics-addr $A:9090 --router-addr $A:5001 --log-level warn
start "$SCRATCH/b.log" "$SPEIL" run --oci-dir "$SCRATCH/b" --registry-addr $B:5000 \
    --metrics-addr $B:9090 --router-addr $B:5001 --log-level warn \
    --bootstrap-kind static --static-bootstrap-peers /ip4/$A/tcp/5001
B_PID=$STARTED
wait_http "http://$B:5000/v2/"
# Until B finds A's records (published 8 at a time).
for _ in $(seq 1 200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$B:5000/v2/bench/small-50/manifests/1?ns=example.com") == 200 ]] && break
    sleep 0.1
done

echo "==> 1 GiB blob: curl, median of 5, alternating"
cat "$SCRATCH/a/blobs/sha256/${BIG#sha256:}" >/dev/null
M_RUNS=() D_RUNS=()
for _ in 1 2 3 4 5; do
    M_RUNS+=("$(download "http://$B:5000/v2/bench/big/blobs/$BIG?ns=example.com")")
    D_RUNS+=("$(download "http://$A:5000/v2/bench/big/blobs/$BIG?ns=example.com")")
done
M_BLOB=$(printf '%s\n' "${M_RUNS[@]}" | median)
D_BLOB=$(printf '%s\n' "${D_RUNS[@]}" | median)
echo "    through B (B/s): ${M_RUNS[*]}"
echo "    from A    (B/s): ${D_RUNS[*]}"

echo "==> mirrored manifests: time to first byte through B, 500 requests over 50 images"
: >"$SCRATCH/ttfb"
for round in $(seq 1 10); do
    for i in $(seq 1 50); do
        curl -s -o /dev/null -w '%{time_starttransfer}\n' \
            "http://$B:5000/v2/bench/small-$i/manifests/1?ns=example.com" >>"$SCRATCH/ttfb"
    done
    # The first round of each pass resolves through the DHT; later ones may hit the 5 s cache.
    ((round % 2 == 0)) && sleep 5.5
done
read -r TTFB_P50 TTFB_P99 < <(sort -n "$SCRATCH/ttfb" | awk '{ v[NR] = $1 * 1000 } END { printf "%.2f %.2f\n", v[int(NR * 0.5)], v[int(NR * 0.99)] }')
# The same through A, which holds them: the cost of the extra hop.
: >"$SCRATCH/ttfb-direct"
for i in $(seq 1 50); do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' \
        "http://$A:5000/v2/bench/small-$i/manifests/1?ns=example.com" >>"$SCRATCH/ttfb-direct"
done
DIRECT_P50=$(sort -n "$SCRATCH/ttfb-direct" | awk '{ v[NR] = $1 * 1000 } END { printf "%.2f", v[int(NR * 0.5)] }')

echo "==> 32 concurrent pulls of different 16 MiB blobs through B"
pids=()
ok=0
for d in $MANY; do
    curl -sf --limit-rate 4M -o /dev/null "http://$B:5000/v2/bench/many/blobs/$d?ns=example.com" &
    pids+=($!)
done
PEAK=0
while kill -0 "${pids[@]}" 2>/dev/null; do
    r=$(rss_kib "$B_PID")
    ((r > PEAK)) && PEAK=$r
    sleep 0.2
done
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done

echo
printf '%-46s %12s %12s %8s %10s %s\n' "measure" "speil" "reference" "ratio" "target" ""
printf '%-46s %12s %12s %8s %10s %s\n' "1 GiB blob GB/s: through B vs straight from A" "$(gbps "$M_BLOB")" "$(gbps "$D_BLOB")" \
    "$(ratio "$M_BLOB" "$D_BLOB")" ">= 0.85" "$(verdict "$(ratio "$M_BLOB" "$D_BLOB")" 0.85 ">=")"
printf '%-46s %12s %12s %8s %10s %s\n' "mirrored manifest TTFB p50, ms (vs from A)" "$TTFB_P50" "$DIRECT_P50" "-" "<= 5" "$(verdict "$TTFB_P50" 5 "<=")"
printf '%-46s %12s %12s %8s %10s %s\n' "mirrored manifest TTFB p99, ms" "$TTFB_P99" "-" "-" "-" ""
printf '%-46s %12s %12s %8s %10s %s\n' "B's RSS peak during 32 concurrent pulls, MiB" "$(mib "$PEAK")" "-" "-" "< 64" "$(verdict "$(mib "$PEAK")" 64 "<=")"
printf '%-46s %12s %12s %8s %10s %s\n' "concurrent pulls completed" "$ok/32" "-" "-" "32/32" ""
