#!/usr/bin/env bash
# The registry benchmark of the foundation: Speil serving an OCI directory against nginx
# (sendfile on) for a 1 GiB blob, and against the CNCF distribution registry for manifests under
# 64 concurrent connections; plus Speil's resident memory idle and under that load.
#
#   bench/registry.sh   (SPEIL_BIN=… to measure another build; as root, to install nginx-light, docker-registry, wrk, apache2-utils, skopeo)
#   bench/registry.sh --quick
#
# Quick mode (CI): a 4 MiB blob instead of 1 GiB, 4 connections for 1 s, one download from each
# server, the debug build (or BENCH_BIN_DIR's binaries, SPEIL_BIN's speil). It asserts that every
# manifest GET and HEAD from wrk and ab, on Speil and on the distribution registry, was answered
# 2xx, and that the blob downloaded from Speil and from nginx has its digest; never a time.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
QUICK=false
[[ ${1:-} == --quick ]] && QUICK=true

need nginx nginx-light
need docker-registry docker-registry
need wrk wrk
need ab apache2-utils
need skopeo skopeo
need curl curl

bins "$QUICK" speil speil-test-support
SPEIL=${SPEIL_BIN:-$BIN/speil}  # SPEIL_BIN: another build, e.g. one from before a change
GEN="$BIN/gen-layout"
BLOB_SIZE=1GiB RUNS=5
if $QUICK; then
    BLOB_SIZE=4MiB RUNS=1
    WRK_LOAD=(-t1 -c4 -d1s) AB_LOAD=(-c 4 -t 1)
fi

DIR="$SCRATCH/layout"
IMAGE=example.com/bench/app:1.0
echo "==> generating a $BLOB_SIZE blob and an image"
BLOB=$("$GEN" "$DIR" blob "$BLOB_SIZE")
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
    [[ $code == 200 ]] || fail "$url answered $code"
done

echo "==> manifests: ${WRK_LOAD[*]} each (GET with wrk, HEAD with ab)"
S_GET=$(rps_get -H "$ACCEPT" "$SPEIL_MANIFEST")
D_GET=$(rps_get -H "$ACCEPT" "$DIST_MANIFEST")
S_HEAD=$(rps_head -H "$ACCEPT" "$SPEIL_MANIFEST")
D_HEAD=$(rps_head -H "$ACCEPT" "$DIST_MANIFEST")
LOADED=$(hwm_kib "$SPEIL_PID")

if $QUICK; then
    for url in "http://$SPEIL_ADDR/v2/bench/app/blobs/$BLOB" "http://$NGINX_ADDR/$BLOB_PATH"; do
        got=$(curl -sf "$url" | sha256sum | cut -d' ' -f1) || fail "$url failed"
        [[ sha256:$got == "$BLOB" ]] || fail "$url served sha256:$got, not $BLOB"
    done
fi

echo "==> $BLOB_SIZE blob: curl, median of $RUNS, alternating"
cat "$DIR/$BLOB_PATH" >/dev/null # both read from the page cache
S_RUNS=() N_RUNS=()
for _ in $(seq 1 "$RUNS"); do
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
printf '%-34s %14s %14s %8s %10s %s\n' "$BLOB_SIZE blob GET, GB/s (vs nginx)" "$(gbps "$S_BLOB")" "$(gbps "$N_BLOB")" \
    "$(ratio "$S_BLOB" "$N_BLOB")" ">= 0.90" "$(verdict "$(ratio "$S_BLOB" "$N_BLOB")" 0.90 ">=")"
printf '%-34s %14s %14s %8s %10s %s\n' "manifest GET, req/s (vs distrib.)" "$S_GET" "$D_GET" \
    "$(ratio "$S_GET" "$D_GET")" ">= 2.00" "$(verdict "$(ratio "$S_GET" "$D_GET")" 2 ">=")"
printf '%-34s %14s %14s %8s %10s %s\n' "manifest HEAD, req/s (vs distrib.)" "$S_HEAD" "$D_HEAD" \
    "$(ratio "$S_HEAD" "$D_HEAD")" ">= 2.00" "$(verdict "$(ratio "$S_HEAD" "$D_HEAD")" 2 ">=")"
printf '%-34s %14s %14s %8s %10s %s\n' "RSS idle, MiB" "$(mib "$IDLE")" "-" "-" "<= 15" "$(verdict "$(mib "$IDLE")" 15 "<=")"
printf '%-34s %14s %14s %8s %10s %s\n' "RSS peak under wrk, MiB" "$(mib "$LOADED")" "-" "-" "<= 50" "$(verdict "$(mib "$LOADED")" 50 "<=")"
printf '%-34s %14s %14s %8s %10s %s\n' "RSS after the $BLOB_SIZE blob, MiB" "$(mib "$AFTER_BLOB")" "-" "-" "-" ""
if $QUICK; then
    echo "quick: every manifest GET and HEAD on Speil and on the distribution registry answered 2xx; the blob from Speil and from nginx had its digest"
fi
