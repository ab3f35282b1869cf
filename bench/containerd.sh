#!/usr/bin/env bash
# The containerd benchmark: a 1 GiB layer served from containerd's store against the same layer
# from an OCI directory on the same disk; and the initial listing of 500 images with 5,000 layers.
#
#   bench/containerd.sh     (as root: it starts a private containerd; installs containerd, curl)
#   bench/containerd.sh --quick
#
# Quick mode (CI): a 4 MiB layer downloaded once from each node, 20 images of 10 layers, the
# debug build (or BENCH_BIN_DIR's binaries, SPEIL_BIN's speil). It asserts that the layer
# downloaded from containerd's store and from the OCI directory has its digest, that the node
# listed every image containerd has, and that it advertised at least every digest of the
# imported images; never a time.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
QUICK=false
[[ ${1:-} == --quick ]] && QUICK=true

need containerd containerd
need curl curl
need python3 python3

SERVER_CPU=(taskset -c 0)
CLIENT_CPU=(taskset -c 1)
NET=127.80.0

bins "$QUICK" speil speil-test-support
SPEIL=${SPEIL_BIN:-$BIN/speil}
GEN="$BIN/gen-layout"
LAYER_SIZE=1GiB RUNS=5 MANY=500
$QUICK && LAYER_SIZE=4MiB RUNS=1 MANY=20

# A private containerd with its own root and socket, like the tests'.
D="$SCRATCH/containerd"
mkdir -p "$D/root" "$D/state" "$D/certs.d" "$D/cni/net.d" "$D/cni/bin" "$D/opt"
cat >"$D/config.toml" <<TOML
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$D/containerd.sock"
[ttrpc]
  address = "$D/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$D/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      conf_dir = "$D/cni/net.d"
      bin_dir = "$D/cni/bin"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$D/certs.d"
TOML
start "$SCRATCH/containerd.log" containerd --config "$D/config.toml"
for _ in $(seq 1 100); do ctr --address "$D/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
CTR=(ctr --address "$D/containerd.sock" -n k8s.io)
CONTENT="$D/root/io.containerd.content.v1.content"

echo "==> a $LAYER_SIZE layer, in an OCI directory and imported into containerd"
"$GEN" "$SCRATCH/big" image example.com/bench/big:1 "$LAYER_SIZE" >/dev/null
tar -C "$SCRATCH/big" -cf "$SCRATCH/big.tar" .
"${CTR[@]}" images import --no-unpack "$SCRATCH/big.tar" >/dev/null
rm "$SCRATCH/big.tar"
LAYER=$(python3 - "$SCRATCH/big" <<'PY'
import json, sys
root = sys.argv[1]
m = json.load(open(f"{root}/index.json"))["manifests"][0]["digest"][7:]
print(json.load(open(f"{root}/blobs/sha256/{m}"))["layers"][0]["digest"])
PY
)
FLAGS=(--containerd-sock "$D/containerd.sock" --containerd-content-path "$CONTENT"
       --containerd-config "$D/config.toml" --containerd-registry-config-path "$D/certs.d")
start "$SCRATCH/on-containerd.log" "$SPEIL" run "${FLAGS[@]}" --registry-addr $NET.1:5000 \
    --metrics-addr $NET.1:9090 --router-addr $NET.1:5001 --log-level warn
start "$SCRATCH/on-ocidir.log" "$SPEIL" run --oci-dir "$SCRATCH/big" --registry-addr $NET.2:5000 \
    --metrics-addr $NET.2:9090 --router-addr $NET.2:5001 --log-level warn
wait_http "http://$NET.1:5000/v2/"
wait_http "http://$NET.2:5000/v2/"
cat "$CONTENT/blobs/sha256/${LAYER#sha256:}" "$SCRATCH/big/blobs/sha256/${LAYER#sha256:}" >/dev/null
if $QUICK; then
    for url in "http://$NET.1:5000/v2/bench/big/blobs/$LAYER?ns=example.com" \
        "http://$NET.2:5000/v2/bench/big/blobs/$LAYER?ns=example.com"; do
        got=$(curl -sf "$url" | sha256sum | cut -d' ' -f1) || fail "$url failed"
        [[ sha256:$got == "$LAYER" ]] || fail "$url served sha256:$got, not $LAYER"
    done
fi
C_RUNS=() O_RUNS=()
for _ in $(seq 1 "$RUNS"); do
    C_RUNS+=("$(download "http://$NET.1:5000/v2/bench/big/blobs/$LAYER?ns=example.com")")
    O_RUNS+=("$(download "http://$NET.2:5000/v2/bench/big/blobs/$LAYER?ns=example.com")")
done
C_BLOB=$(printf '%s\n' "${C_RUNS[@]}" | median)
O_BLOB=$(printf '%s\n' "${O_RUNS[@]}" | median)
echo "    containerd store (B/s): ${C_RUNS[*]}"
echo "    OCI directory    (B/s): ${O_RUNS[*]}"

echo "==> $MANY images of 10 layers each, imported without unpacking"
for i in $(seq 1 "$MANY"); do
    "$GEN" "$SCRATCH/many" image "example.com/bench/img-$i:1" 1KiB 1KiB 1KiB 1KiB 1KiB 1KiB 1KiB 1KiB 1KiB 1KiB >/dev/null
done
tar -C "$SCRATCH/many" -cf "$SCRATCH/many.tar" .
"${CTR[@]}" images import --no-unpack "$SCRATCH/many.tar" >/dev/null
IMAGES=$("${CTR[@]}" images ls -q | wc -l)
start "$SCRATCH/listing.log" "$SPEIL" run "${FLAGS[@]}" --registry-addr $NET.3:5000 \
    --metrics-addr $NET.3:9090 --router-addr $NET.3:5001 --log-format json \
    --log-level warn,containerd=debug
for _ in $(seq 1 300); do grep -qs "listed containerd's images" "$SCRATCH/listing.log" && break; sleep 0.1; done
read -r LISTED LIST_MS < <(python3 - "$SCRATCH/listing.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("message") == "listed containerd's images":
        print(e["images"], f'{e["elapsed_ms"]:.0f}')
        break
PY
)
sleep 1
CONTENTS=$(curl -s "http://$NET.3:9090/metrics" | awk '/^speil_advertised_content_digests/ {s += $2} END {print s}')

echo
printf '%-52s %12s %12s %8s %10s %s\n' "measure" "speil" "reference" "ratio" "target" ""
printf '%-52s %12s %12s %8s %10s %s\n' "$LAYER_SIZE layer GB/s: containerd store vs OCI directory" "$(gbps "$C_BLOB")" "$(gbps "$O_BLOB")" \
    "$(ratio "$C_BLOB" "$O_BLOB")" ">= 0.90" "$(verdict "$(ratio "$C_BLOB" "$O_BLOB")" 0.90 ">=")"
printf '%-52s %12s %12s %8s %10s %s\n' "initial listing of $LISTED images (containerd has $IMAGES), ms" "$LIST_MS" "-" "-" "< 2000" "$(verdict "$LIST_MS" 2000 "<=")"
printf '%-52s %12s %12s %8s %10s %s\n' "content digests advertised after the listing" "$CONTENTS" "-" "-" ">= 6000" ""
if $QUICK; then
    # Every blob of the imported layouts: manifests, configs and layers.
    BLOBS=$(find "$SCRATCH/many/blobs/sha256" "$SCRATCH/big/blobs/sha256" -type f -printf '%f\n' | sort -u | wc -l)
    [[ -n ${LISTED:-} ]] || fail "the node did not log its listing of containerd's images"
    # The CRI names each image a second time by its config digest; the node skips those aliases.
    NAMED=$("${CTR[@]}" images ls -q | grep -vc '^sha256:')
    ((LISTED == NAMED)) || fail "the node listed $LISTED images; containerd has $NAMED by name"
    ((${CONTENTS:-0} >= BLOBS)) || fail "the node advertised ${CONTENTS:-no} content digests, fewer than the $BLOBS imported"
    echo "quick: the layer from containerd's store and from the OCI directory had its digest; the node listed all $NAMED named images and advertised $CONTENTS digests (>= $BLOBS imported)"
fi
