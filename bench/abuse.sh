#!/usr/bin/env bash
# The cost of the registry port's guards, side by side in one run: manifest GET req/s and p99
# latency without credentials, with --basic-auth-file (every request checked), without
# credentials while 2,000 connections that never finish their headers are open, and while the
# rogue peer of test-support (rogue-flood) floods the node's router with provider records,
# connections and listen addresses.
#
#   bench/abuse.sh   (SPEIL_BIN=… to measure another build; as root, to install wrk)
#   bench/abuse.sh --quick
#
# Quick mode (CI): a 1 MiB layer, 4 wrk connections for 1 s per measure, 200 slow connections
# instead of 2,000, the debug build (or BENCH_BIN_DIR's binaries, SPEIL_BIN's speil). It asserts
# that the open node answers 200, the authenticated one 200 with credentials and 401 without,
# that every wrk request in the four cases was answered 2xx (while the slow connections were
# held open and while the rogue peer flooded the router, at least one round), and that the node
# is still running at the end; never a time.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
QUICK=false
[[ ${1:-} == --quick ]] && QUICK=true

need wrk wrk
need curl curl
need python3 python3

bins "$QUICK" speil speil-test-support
SPEIL=${SPEIL_BIN:-$BIN/speil}
GEN="$BIN/gen-layout"
FLOODER="$BIN/rogue-flood"
LAYERS=(4MiB 1MiB) SLOW=2000
if $QUICK; then
    LAYERS=(1MiB) SLOW=200
    WRK_LOAD=(-t1 -c4 -d1s)
fi

DIR="$SCRATCH/layout"
IMAGE=example.com/bench/app:1.0
"$GEN" "$DIR" image "$IMAGE" "${LAYERS[@]}" >/dev/null
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
    [[ $code == "$want" ]] || fail "$* answered $code, not $want"
}
expect 200 "http://$OPEN$PATH_M"
expect 200 -H "$AUTH" "http://$AUTHED$PATH_M"
expect 401 "http://$AUTHED$PATH_M"

# "req/s p99_ms" of GET with wrk ($WRK_LOAD); fails unless every request was answered 2xx.
measure() {
    local out
    out=$(wrk_checked --latency "$@") || exit 1  # runs in a command substitution: no set -e
    awk '/^Requests\/sec/ { rps = $2 }
         $1 == "99%" { v = $2; ms = v + 0
                       if (v ~ /us$/) ms = ms / 1000; else if (v ~ /ms$/) ms = ms + 0;
                       else if (v ~ /s$/) ms = ms * 1000
                       p99 = ms }
         END { printf "%s %.2f\n", rps, p99 }' <<<"$out"
}

echo "==> manifest GET, ${WRK_LOAD[*]} each"
out=$(measure -H "$ACCEPT" "http://$OPEN$PATH_M")
read -r O_RPS O_P99 <<<"$out"
out=$(measure -H "$ACCEPT" -H "$AUTH" "http://$AUTHED$PATH_M")
read -r A_RPS A_P99 <<<"$out"

echo "==> the same while $SLOW connections hold unfinished headers"
"${CLIENT_CPU[@]}" python3 - "$OPEN" "$SLOW" 60 >"$SCRATCH/flood.out" <<'PY' &
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
grep -q held "$SCRATCH/flood.out" || fail "the slow connections were not opened"
sleep 1
FDS=$(find "/proc/$OPEN_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
out=$(measure -H "$ACCEPT" "http://$OPEN$PATH_M")
read -r F_RPS F_P99 <<<"$out"
kill "$FLOOD" 2>/dev/null || true

echo "==> the same while the rogue peer floods the router"
"${CLIENT_CPU[@]}" "$FLOODER" 127.0.0.1:15101 - >"$SCRATCH/rogue.out" 2>&1 &
PIDS+=("$!")
ROGUE=$!
for _ in $(seq 1 600); do grep -q "^round 1:" "$SCRATCH/rogue.out" && break; sleep 0.1; done
grep -q "^round 1:" "$SCRATCH/rogue.out" || fail "the rogue peer did not flood: $(cat "$SCRATCH/rogue.out")"
out=$(measure -H "$ACCEPT" "http://$OPEN$PATH_M")
read -r R_RPS R_P99 <<<"$out"
ROUNDS=$(grep -c "^round" "$SCRATCH/rogue.out")
ROGUE_RSS=$(rss_kib "$OPEN_PID")
kill "$ROGUE" 2>/dev/null || true
if $QUICK; then
    ((FDS >= SLOW)) || fail "the node held $FDS descriptors with $SLOW slow connections open"
    kill -0 "$OPEN_PID" 2>/dev/null || fail "the node flooded by the rogue peer is gone"
    expect 200 "http://$OPEN$PATH_M"
fi

echo
printf '%-44s %12s %10s\n' "manifest GET (wrk ${WRK_LOAD[*]})" "req/s" "p99 ms"
printf '%-44s %12s %10s\n' "no credentials" "$O_RPS" "$O_P99"
printf '%-44s %12s %10s\n' "--basic-auth-file, credentials checked" "$A_RPS" "$A_P99"
printf '%-44s %12s %10s\n' "no credentials, $SLOW slow connections open" "$F_RPS" "$F_P99"
printf '%-44s %12s %10s\n' "no credentials, rogue peer flooding the router" "$R_RPS" "$R_P99"
printf 'ratio with/without credentials: %s req/s\n' "$(ratio "$A_RPS" "$O_RPS")"
printf 'descriptors of the node with the slow connections open: %s\n' "$FDS"
printf 'rogue flood: %s rounds of 10,000 records, 100 connections and 3,000 addresses; node RSS %s MiB at the end\n' "$ROUNDS" "$(mib "$ROGUE_RSS")"
if $QUICK; then
    echo "quick: every request was answered as claimed (200 open, 200 and 401 with and without credentials, every wrk request 2xx with $SLOW slow connections held and through $ROUNDS rounds of the rogue flood); the node is still up"
fi
