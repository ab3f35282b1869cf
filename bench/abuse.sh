#!/usr/bin/env bash
# The cost of the registry port's guards, side by side in one run: manifest GET req/s and p99
# latency without credentials, with --basic-auth-file (every request checked), without
# credentials while 2,000 connections that never finish their headers are open, and while the
# rogue peer of test-support (rogue-flood) floods the node's router with provider records,
# connections and listen addresses.
#
#   bench/abuse.sh   (SPEIL_BIN=… to measure another build; as root, to install wrk)
source "$(dirname "$0")/lib.sh"

need wrk wrk
need curl curl
need python3 python3

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
echo "==> building speil (release)"
cargo build --release -q -p speil -p speil-test-support --manifest-path "$ROOT/Cargo.toml"
SPEIL=${SPEIL_BIN:-$TARGET/release/speil}
GEN="$TARGET/release/gen-layout"
FLOODER="$TARGET/release/rogue-flood"

DIR="$SCRATCH/layout"
IMAGE=example.com/bench/app:1.0
"$GEN" "$DIR" image "$IMAGE" 4MiB 1MiB >/dev/null
CREDENTIALS=puller:s3cret
echo "$CREDENTIALS" >"$SCRATCH/basic-auth"
AUTH="Authorization: Basic $(printf %s "$CREDENTIALS" | base64)"

OPEN=127.0.0.1:15100
AUTHED=127.0.0.1:15110
# Room for the slow connections and wrk's; headers may take a minute, so the slow connections
# stay open through the run.
BOUNDS=(--registry-max-connections 4096 --registry-header-timeout 60s)
start "$SCRATCH/open.log" "$SPEIL" run --oci-dir "$DIR" --registry-addr "$OPEN" \
    --metrics-addr 127.0.0.1:15190 --router-addr 127.0.0.1:15101 --log-level warn "${BOUNDS[@]}"
OPEN_PID=$STARTED
start "$SCRATCH/authed.log" "$SPEIL" run --oci-dir "$DIR" --registry-addr "$AUTHED" \
    --metrics-addr 127.0.0.1:15191 --router-addr 127.0.0.1:15111 --log-level warn "${BOUNDS[@]}" \
    --basic-auth-file "$SCRATCH/basic-auth"
wait_http "http://$OPEN/v2/"
wait_http "http://$AUTHED/v2/"

ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"
PATH_M="/v2/bench/app/manifests/1.0?ns=example.com"
expect() { # expect CODE CURL_ARGS...
    local want=$1 code; shift
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$ACCEPT" "$@")
    [[ $code == "$want" ]] || { echo "bench: $* answered $code, not $want" >&2; exit 1; }
}
expect 200 "http://$OPEN$PATH_M"
expect 200 -H "$AUTH" "http://$AUTHED$PATH_M"
expect 401 "http://$AUTHED$PATH_M"

# "req/s p99_ms" of GET with wrk (64 connections, 10 s); fails on any non-2xx answer.
measure() {
    local out
    out=$("${CLIENT_CPU[@]}" wrk -t2 -c64 -d10s --latency "$@")
    if grep -q "Non-2xx" <<<"$out"; then echo "bench: wrk saw errors: $out" >&2; exit 1; fi
    awk '/^Requests\/sec/ { rps = $2 }
         $1 == "99%" { v = $2; ms = v + 0
                       if (v ~ /us$/) ms = ms / 1000; else if (v ~ /ms$/) ms = ms + 0;
                       else if (v ~ /s$/) ms = ms * 1000
                       p99 = ms }
         END { printf "%s %.2f\n", rps, p99 }' <<<"$out"
}

echo "==> manifest GET, 64 connections, 10 s each"
read -r O_RPS O_P99 < <(measure -H "$ACCEPT" "http://$OPEN$PATH_M")
read -r A_RPS A_P99 < <(measure -H "$ACCEPT" -H "$AUTH" "http://$AUTHED$PATH_M")

echo "==> the same while 2,000 connections hold unfinished headers"
"${CLIENT_CPU[@]}" python3 - "$OPEN" 2000 60 >"$SCRATCH/flood.out" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
held = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: speil\r\n")
    held.append(s)
print("held", len(held), flush=True)
time.sleep(int(sys.argv[3]))
PY
FLOOD=$!
PIDS+=("$FLOOD")
for _ in $(seq 1 600); do grep -q held "$SCRATCH/flood.out" && break; sleep 0.1; done
grep -q held "$SCRATCH/flood.out" || { echo "bench: the slow connections were not opened" >&2; exit 1; }
sleep 1
FDS=$(ls "/proc/$OPEN_PID/fd" | wc -l)
read -r F_RPS F_P99 < <(measure -H "$ACCEPT" "http://$OPEN$PATH_M")
kill "$FLOOD" 2>/dev/null || true

echo "==> the same while the rogue peer floods the router"
"${CLIENT_CPU[@]}" "$FLOODER" 127.0.0.1:15101 - >"$SCRATCH/rogue.out" 2>&1 &
PIDS+=("$!")
ROGUE=$!
for _ in $(seq 1 600); do grep -q "^round 1:" "$SCRATCH/rogue.out" && break; sleep 0.1; done
grep -q "^round 1:" "$SCRATCH/rogue.out" || { echo "bench: the rogue peer did not flood: $(cat "$SCRATCH/rogue.out")" >&2; exit 1; }
read -r R_RPS R_P99 < <(measure -H "$ACCEPT" "http://$OPEN$PATH_M")
ROUNDS=$(grep -c "^round" "$SCRATCH/rogue.out")
ROGUE_RSS=$(rss_kib "$OPEN_PID")
kill "$ROGUE" 2>/dev/null || true

echo
printf '%-44s %12s %10s\n' "manifest GET (64 connections)" "req/s" "p99 ms"
printf '%-44s %12s %10s\n' "no credentials" "$O_RPS" "$O_P99"
printf '%-44s %12s %10s\n' "--basic-auth-file, credentials checked" "$A_RPS" "$A_P99"
printf '%-44s %12s %10s\n' "no credentials, 2,000 slow connections open" "$F_RPS" "$F_P99"
printf '%-44s %12s %10s\n' "no credentials, rogue peer flooding the router" "$R_RPS" "$R_P99"
printf 'ratio with/without credentials: %s req/s\n' "$(ratio "$A_RPS" "$O_RPS")"
printf 'descriptors of the node with the slow connections open: %s\n' "$FDS"
printf 'rogue flood: %s rounds of 10,000 records, 100 connections and 3,000 addresses; node RSS %s MiB at the end\n' "$ROUNDS" "$(mib "$ROGUE_RSS")"
