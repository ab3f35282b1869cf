#!/usr/bin/env bash
# The registry benchmark of the foundation: Speil serving an OCI directory against nginx
# (sendfile on) for a 1 GiB blob, and against the CNCF distribution registry for manifests under
# 64 concurrent connections; plus Speil's resident memory idle and under that load.
#
#   bench/registry.sh   (SPEIL_BIN=… to measure another build; as root, to install nginx-light, docker-registry, wrk, apache2-utils, skopeo)
source "$(dirname "$0")/lib.sh"

need nginx nginx-light
need docker-registry docker-registry
need wrk wrk
need ab apache2-utils
need skopeo skopeo
need curl curl

echo "==> building speil (release)"
cargo build --release -q -p speil -p speil-test-support --manifest-path "$ROOT/Cargo.toml"
SPEIL=${SPEIL_BIN:-$ROOT/target/release/speil}  # SPEIL_BIN: another build, e.g. one from before a change
GEN="$ROOT/target/release/gen-layout"

DIR="$SCRATCH/layout"
IMAGE=example.com/bench/app:1.0
echo "==> generating a 1 GiB blob and an image"
BLOB=$("$GEN" "$DIR" blob 1GiB)
"$GEN" "$DIR" image "$IMAGE" 4MiB 1MiB >/dev/null
BLOB_PATH="blobs/sha256/${BLOB#sha256:}"

SPEIL_ADDR=127.0.0.1:15000
NGINX_ADDR=127.0.0.1:15001
DIST_ADDR=127.0.0.1:15002

start "$SCRATCH/speil.log" "$SPEIL" run --oci-dir "$DIR" --registry-addr "$SPEIL_ADDR" \
    --metrics-addr 127.0.0.1:15090 --log-level warn
SPEIL_PID=$STARTED

chmod 755 "$SCRATCH" # nginx workers run as www-data
mkdir -p "$SCRATCH/nginx"
cat >"$SCRATCH/nginx/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $SCRATCH/nginx/nginx.pid;
error_log $SCRATCH/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    server { listen $NGINX_ADDR; root $DIR; }
}
CONF
start "$SCRATCH/nginx.log" nginx -c "$SCRATCH/nginx/nginx.conf"

cat >"$SCRATCH/distribution.yml" <<CONF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: $SCRATCH/distribution }
  cache: { blobdescriptor: inmemory }
http: { addr: $DIST_ADDR }
CONF
start "$SCRATCH/distribution.log" docker-registry serve "$SCRATCH/distribution.yml"

wait_http "http://$SPEIL_ADDR/v2/"
wait_http "http://$NGINX_ADDR/oci-layout"
wait_http "http://$DIST_ADDR/v2/"
skopeo copy -q --dest-tls-verify=false "oci:$DIR:$IMAGE" "docker://$DIST_ADDR/bench/app:1.0"

sleep 1
IDLE=$(rss_kib "$SPEIL_PID")

ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"
SPEIL_MANIFEST="http://$SPEIL_ADDR/v2/bench/app/manifests/1.0?ns=example.com"
DIST_MANIFEST="http://$DIST_ADDR/v2/bench/app/manifests/1.0"
for url in "$SPEIL_MANIFEST" "$DIST_MANIFEST"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$ACCEPT" "$url")
    [[ $code == 200 ]] || { echo "bench: $url answered $code" >&2; exit 1; }
done

echo "==> manifests: 64 connections, 10 s each (GET with wrk, HEAD with ab)"
S_GET=$(rps_get -H "$ACCEPT" "$SPEIL_MANIFEST")
D_GET=$(rps_get -H "$ACCEPT" "$DIST_MANIFEST")
S_HEAD=$(rps_head -H "$ACCEPT" "$SPEIL_MANIFEST")
D_HEAD=$(rps_head -H "$ACCEPT" "$DIST_MANIFEST")
LOADED=$(hwm_kib "$SPEIL_PID")

echo "==> 1 GiB blob: curl, median of 5, alternating"
cat "$DIR/$BLOB_PATH" >/dev/null # both read from the page cache
S_RUNS=() N_RUNS=()
for _ in 1 2 3 4 5; do
    S_RUNS+=("$(download "http://$SPEIL_ADDR/v2/bench/app/blobs/$BLOB")")
    N_RUNS+=("$(download "http://$NGINX_ADDR/$BLOB_PATH")")
done
S_BLOB=$(printf '%s\n' "${S_RUNS[@]}" | median)
N_BLOB=$(printf '%s\n' "${N_RUNS[@]}" | median)
echo "    speil runs (B/s): ${S_RUNS[*]}"
echo "    nginx runs (B/s): ${N_RUNS[*]}"
AFTER_BLOB=$(rss_kib "$SPEIL_PID")

echo
printf '%-34s %14s %14s %8s %10s %s\n' "measure" "speil" "reference" "ratio" "target" ""
printf '%-34s %14s %14s %8s %10s %s\n' "1 GiB blob GET, GB/s (vs nginx)" "$(gbps "$S_BLOB")" "$(gbps "$N_BLOB")" \
    "$(ratio "$S_BLOB" "$N_BLOB")" ">= 0.90" "$(verdict "$(ratio "$S_BLOB" "$N_BLOB")" 0.90 ">=")"
printf '%-34s %14s %14s %8s %10s %s\n' "manifest GET, req/s (vs distrib.)" "$S_GET" "$D_GET" \
    "$(ratio "$S_GET" "$D_GET")" ">= 2.00" "$(verdict "$(ratio "$S_GET" "$D_GET")" 2 ">=")"
printf '%-34s %14s %14s %8s %10s %s\n' "manifest HEAD, req/s (vs distrib.)" "$S_HEAD" "$D_HEAD" \
    "$(ratio "$S_HEAD" "$D_HEAD")" ">= 2.00" "$(verdict "$(ratio "$S_HEAD" "$D_HEAD")" 2 ">=")"
printf '%-34s %14s %14s %8s %10s %s\n' "RSS idle, MiB" "$(mib "$IDLE")" "-" "-" "<= 15" "$(verdict "$(mib "$IDLE")" 15 "<=")"
printf '%-34s %14s %14s %8s %10s %s\n' "RSS peak under wrk, MiB" "$(mib "$LOADED")" "-" "-" "<= 50" "$(verdict "$(mib "$LOADED")" 50 "<=")"
printf '%-34s %14s %14s %8s %10s %s\n' "RSS after the 1 GiB blob, MiB" "$(mib "$AFTER_BLOB")" "-" "-" "-" ""
