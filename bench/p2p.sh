#!/usr/bin/env bash
# The P2P benchmark: 50 nodes on their own loopback IPs (127.77.0.1-50, same ports, like pods)
# started together with DNS bootstrap through dnsmasq; time until every node is `connected`
# after the last one started; lookup latency of keys held by one node, from the others; resident
# memory and CPU of an idle node.
#
#   bench/p2p.sh                      (as root, to install dnsmasq-base)
#   PING_INTERVAL=1h bench/p2p.sh     (the same without liveness checks, to compare their cost)
#   SPEIL_BIN=/other/speil PING_INTERVAL= bench/p2p.sh   (another build, e.g. before a change)
#   bench/p2p.sh --quick
#
# Quick mode (CI): 5 nodes, 20 layers and 20 lookups, a 2 s idle window, the debug build (or
# BENCH_BIN_DIR's binaries, SPEIL_BIN's speil), and --p2p-max-providers-per-lookup 2, so that a
# lookup names fewer holders of the popular image than there are and the dead-holder scenario
# has survivors. It asserts that every node became connected, that every lookup found node 1
# (by its peer id), that no node dialled itself, that once the holders a lookup named were
# killed a lookup found a live one, and that the pull through the seeker then answered 200 from
# a peer; never a time.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
QUICK=false
[[ ${1:-} == --quick ]] && QUICK=true

need dnsmasq dnsmasq-base
need curl curl
need python3 python3

# 50 nodes share both cores; nothing is pinned.
SERVER_CPU=()

EXTRA_FLAGS=()
if $QUICK; then
    NODES=${NODES:-5}
    LOOKUPS=${LOOKUPS:-20}
    LAYERS=${LAYERS:-20}
    IDLE_WINDOW=${IDLE_WINDOW:-2}
    EXTRA_FLAGS=(--p2p-max-providers-per-lookup 2)
fi
NODES=${NODES:-50}
LOOKUPS=${LOOKUPS:-400}
# Layers of node 1's image: the distinct keys looked up.
LAYERS=${LAYERS:-200}
# How often nodes ping their peers (--peer-ping-interval); 1h measures a node without liveness
# checks, to compare their cost; empty passes no flag (a build from before the flag existed).
PING_INTERVAL=${PING_INTERVAL-5s}
# Another build to measure, e.g. one from before a change (its own flags must fit).
SPEIL_BIN=${SPEIL_BIN:-}
# How long idle CPU is measured.
IDLE_WINDOW=${IDLE_WINDOW:-30}
NET=127.77.0
NAME=speil-bench.test

bins "$QUICK" speil speil-test-support
SPEIL=${SPEIL_BIN:-$BIN/speil}
GEN="$BIN/gen-layout"
PING_FLAGS=()
[[ -n $PING_INTERVAL ]] && PING_FLAGS=(--peer-ping-interval "$PING_INTERVAL")

# Node 1 holds an image of $LAYERS (200) small layers: that many distinct keys to look up, so every lookup is a
# fresh DHT query rather than a cached answer.
# Every node but the last also holds one popular image (the same bytes on each); the last one
# seeks it at the end.
mkdir -p "$SCRATCH/layouts"
"$GEN" "$SCRATCH/popular" image example.com/bench/popular:1 1KiB >/dev/null
for i in $(seq 1 "$NODES"); do
    ((i < NODES)) && cp -r "$SCRATCH/popular" "$SCRATCH/layouts/$i"
    "$GEN" "$SCRATCH/layouts/$i" blob 1 >/dev/null
done
SIZES=$(for _ in $(seq 1 "$LAYERS"); do printf '1KiB '; done)
# shellcheck disable=SC2086
"$GEN" "$SCRATCH/layouts/1" image example.com/bench/many:1.0 $SIZES >/dev/null

: >"$SCRATCH/hosts"
for i in $(seq 1 "$NODES"); do echo "$NET.$i $NAME" >>"$SCRATCH/hosts"; done
start "$SCRATCH/dnsmasq.log" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv \
    --no-hosts --bind-interfaces --user=root --pid-file= --local-ttl=0 --log-facility=- \
    --listen-address="$NET.253" --port=53 --addn-hosts="$SCRATCH/hosts"
sleep 0.3

echo "==> starting $NODES nodes"
declare -a NODE_PIDS
for i in $(seq 1 "$NODES"); do
    start "$SCRATCH/node-$i.log" "$SPEIL" run --oci-dir "$SCRATCH/layouts/$i" \
        --registry-addr "$NET.$i:5000" --metrics-addr "$NET.$i:9090" --router-addr "$NET.$i:5001" \
        --bootstrap-kind dns --dns-bootstrap-domain "$NAME" --dns-bootstrap-nameserver "$NET.253:53" \
        "${PING_FLAGS[@]}" "${EXTRA_FLAGS[@]}" --log-level warn
    NODE_PIDS[i]=$STARTED
done
LAST_START=$(date +%s.%N)

# Poll every node's /status concurrently; print when the last one became connected.
CONVERGED=$(python3 - "$NET" "$NODES" "$LAST_START" <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
net, nodes, last_start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def state(i):
    try:
        with urllib.request.urlopen(f"http://{net}.{i}:9090/status", timeout=1) as r:
            return json.load(r)["bootstrap"]["state"]
    except Exception:
        return None
pending, done_at = set(range(1, nodes + 1)), {}
with ThreadPoolExecutor(16) as pool:
    while pending and time.time() - last_start < 120:
        for i, s in zip(list(pending), pool.map(state, list(pending))):
            if s == "connected":
                pending.discard(i)
                done_at[i] = time.time()
        time.sleep(0.05)
if pending:
    sys.exit(f"bench: nodes not connected after 120 s: {sorted(pending)}")
print(f"{max(done_at.values()) - last_start:.2f}")
PY
)

echo "==> $LOOKUPS lookups of distinct keys held by node 1, from the other nodes"
# By name: node 1's index also lists the popular image (first), whose layer every node but the
# last holds.
DIGESTS=$(python3 - "$SCRATCH/layouts/1" example.com/bench/many:1.0 <<'PY'
import json, sys
root, name = sys.argv[1], sys.argv[2]
index = json.load(open(f"{root}/index.json"))
top = [m["digest"] for m in index["manifests"]
       if m.get("annotations", {}).get("io.containerd.image.name") == name][0]
manifest = json.load(open(f"{root}/blobs/sha256/{top[7:]}"))
for layer in manifest["layers"]:
    print(layer["digest"])
PY
)
# Let node 1's records reach the DHT (published 128 per 100 ms).
sleep 3
: >"$SCRATCH/lookups"
n=0
while ((n < LOOKUPS)); do
    for d in $DIGESTS; do
        ((n < LOOKUPS)) || break
        asker=$((2 + RANDOM % (NODES - 1)))
        curl -s "http://$NET.$asker:9090/debug/lookup?key=$d" >>"$SCRATCH/lookups"
        echo >>"$SCRATCH/lookups"
        n=$((n + 1))
    done
    # Past the 5 s result cache before the same keys are asked again.
    ((n < LOOKUPS)) && sleep 5
done
peer_id() { curl -s "http://$NET.$1:9090/status" | python3 -c 'import json, sys; print(json.load(sys.stdin)["node"]["peer_id"])'; }
HOLDER=$(peer_id 1)
read -r P50 P99 FOUND < <(python3 - "$SCRATCH/lookups" "$HOLDER" <<'PY'
import json, sys
times, found = [], 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    if any(p["peer"] == sys.argv[2] for p in r["providers"]):
        found += 1
        times.append(r["providers"][0]["after_ms"])
times.sort()
pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] if times else float("nan")
print(f"{pct(0.50):.2f} {pct(0.99):.2f} {found}")
PY
)

# Idle CPU: every node's user + system time over a quiet window, in ms per second.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sleep 2
declare -a TICKS
for i in $(seq 1 "$NODES"); do TICKS[i]=$(cpu_ticks "${NODE_PIDS[i]}"); done
sleep "$IDLE_WINDOW"
HZ=$(getconf CLK_TCK)
IDLE_CPU=$(for i in $(seq 1 "$NODES"); do
    echo $(( $(cpu_ticks "${NODE_PIDS[i]}") - TICKS[i] ))
done | awk -v hz="$HZ" -v w="$IDLE_WINDOW" '{ s += $1 } END { printf "%.2f", s * 1000 / hz / w / NR }')
RSS_ALL=$(for i in $(seq 1 "$NODES"); do echo "$(rss_kib "${NODE_PIDS[i]}") $i"; done | sort -n)
MEDIAN_IDLE=$(awk '{print $1}' <<<"$RSS_ALL" | median)
MAX_IDLE=$(tail -1 <<<"$RSS_ALL" | awk '{print $1}')
echo "    largest RSS (KiB, node): $(tail -3 <<<"$RSS_ALL" | tr '\n' ' ')"

SELF_DIALS=0
for i in $(seq 1 "$NODES"); do
    v=$(curl -s "http://$NET.$i:9090/metrics" | awk '/^speil_p2p_self_dials_total/ {print $2}')
    SELF_DIALS=$((SELF_DIALS + ${v%.*}))
done

echo "==> connections per node"
CONNS=$(for i in $(seq 1 "$NODES"); do
    curl -s "http://$NET.$i:9090/status" | python3 -c 'import json, sys; print(json.load(sys.stdin)["peers"]["connected"])'
done | sort -n)
CONN_MEDIAN=$(median <<<"$CONNS")
CONN_MAX=$(tail -1 <<<"$CONNS")

echo "==> killing the holders of the popular image that a lookup found"
POPULAR=$(python3 - "$SCRATCH/popular" <<'PY'
import json, sys
root = sys.argv[1]
top = json.load(open(f"{root}/index.json"))["manifests"][0]["digest"]
print(json.load(open(f"{root}/blobs/sha256/{top[7:]}"))["layers"][0]["digest"])
PY
)
SEEKER=$NODES
: >"$SCRATCH/peer-ids"
for i in $(seq 1 "$NODES"); do
    echo "$(peer_id "$i") $i" >>"$SCRATCH/peer-ids"
done
FOUND_IDS=$(curl -s "http://$NET.$SEEKER:9090/debug/lookup?key=$POPULAR" \
    | python3 -c 'import json, sys; print("\n".join(p["peer"] for p in json.load(sys.stdin)["providers"]))')
KILLED=0
: >"$SCRATCH/dead-ids"
for id in $FOUND_IDS; do
    i=$(awk -v id="$id" '$1 == id {print $2}' "$SCRATCH/peer-ids")
    [[ -n $i ]] || continue
    kill "${NODE_PIDS[i]}" 2>/dev/null || true
    wait "${NODE_PIDS[i]}" 2>/dev/null || true
    echo "$id" >>"$SCRATCH/dead-ids"
    KILLED=$((KILLED + 1))
done
# Until a lookup from the seeker names a holder still alive (or 60 s); with NODES <= 21 a lookup
# names every holder (at most --p2p-max-providers-per-lookup, 20; 2 in quick mode), so none is
# left.
REPAIR=n/a
((KILLED < NODES - 1)) && REPAIR=$(python3 - "$NET.$SEEKER" "$POPULAR" "$SCRATCH/dead-ids" <<'PY'
import json, sys, time, urllib.request
seeker, key, dead = sys.argv[1], sys.argv[2], set(open(sys.argv[3]).read().split())
started = time.time()
while time.time() - started < 60:
    with urllib.request.urlopen(f"http://{seeker}:9090/debug/lookup?key={key}", timeout=5) as r:
        ids = [p["peer"] for p in json.load(r)["providers"]]
    if any(i not in dead for i in ids):
        print(f"{time.time() - started:.1f}")
        sys.exit()
    time.sleep(0.5)
print("never")
PY
)
PULL=$(curl -s -o /dev/null -w '%{http_code}' -D "$SCRATCH/pull-headers" \
    "http://$NET.$SEEKER:5000/v2/bench/popular/blobs/$POPULAR?ns=example.com")
PULL_SOURCE=$(awk -F': ' 'tolower($1) == "x-speil-source" {print $2}' "$SCRATCH/pull-headers" | tr -d '\r')

echo
printf '%-44s %12s %10s %s\n' "measure" "speil" "target" ""
printf '%-44s %12s %10s %s\n' "$NODES nodes all connected after last start, s" "$CONVERGED" "<= 10" "$(verdict "$CONVERGED" 10 "<=")"
printf '%-44s %12s %10s %s\n' "lookup to first provider p50, ms" "$P50" "<= 2" "$(verdict "$P50" 2 "<=")"
printf '%-44s %12s %10s %s\n' "lookup to first provider p99, ms" "$P99" "<= 20" "$(verdict "$P99" 20 "<=")"
printf '%-44s %12s %10s %s\n' "lookups that found node 1" "$FOUND/$LOOKUPS" "all" ""
printf '%-44s %12s %10s %s\n' "RSS of an idle node, MiB (median of $NODES)" "$(mib "$MEDIAN_IDLE")" "<= 20" "$(verdict "$(mib "$MEDIAN_IDLE")" 20 "<=")"
printf '%-44s %12s %10s %s\n' "RSS of an idle node, MiB (largest of $NODES)" "$(mib "$MAX_IDLE")" "<= 20" "$(verdict "$(mib "$MAX_IDLE")" 20 "<=")"
printf '%-44s %12s %10s %s\n' "idle CPU per node, ms/s (mean of $NODES)" "$IDLE_CPU" "" ""
printf '%-44s %12s %10s %s\n' "self dials, all nodes" "$SELF_DIALS" "0" ""
printf '%-44s %12s %10s %s\n' "connections per node (median of $NODES)" "$CONN_MEDIAN" "" ""
printf '%-44s %12s %10s %s\n' "connections per node (largest of $NODES)" "$CONN_MAX" "<= 50" "$(verdict "$CONN_MAX" 50 "<=")"
printf '%-44s %12s %10s %s\n' "popular holders killed (a lookup's, of $((NODES - 1)))" "$KILLED" "" ""
printf '%-44s %12s %10s %s\n' "then a lookup finds a live holder after, s" "$REPAIR" "<= 30" "$(case $REPAIR in never) echo MISSED ;; n/a) ;; *) verdict "$REPAIR" 30 "<=" ;; esac)"
printf '%-44s %12s %10s %s\n' "pull through the seeker after the kill" "$PULL ${PULL_SOURCE:-}" "200 peer" ""
echo "($SPEIL, peer ping interval ${PING_INTERVAL:-none}, idle window ${IDLE_WINDOW} s)"

if $QUICK; then
    ((FOUND == LOOKUPS)) || fail "$FOUND of $LOOKUPS lookups found node 1"
    ((SELF_DIALS == 0)) || fail "$SELF_DIALS self dials"
    ((KILLED > 0)) || fail "a lookup of the popular image found no holder"
    [[ $REPAIR != never && $REPAIR != n/a ]] || fail "after $KILLED holders were killed, no lookup found a live one ($REPAIR)"
    [[ $PULL == 200 && $PULL_SOURCE == peer* ]] || fail "the pull through the seeker answered $PULL ${PULL_SOURCE:-}, not 200 peer"
    echo "quick: all $NODES nodes connected; $FOUND/$LOOKUPS lookups found node 1; no self dials; after $KILLED holders were killed a lookup found a live one and the pull came from a peer"
fi
