#!/usr/bin/env bash
# How fast a node tells the truth when its peers go: NODES nodes on 127.78.0.1-N with DNS
# bootstrap; once all are connected, every node but the first is killed (SIGKILL: the process
# is gone, its connections close) and the time until the first one's /status says `isolated` is
# measured; then the same with SIGSTOP (a hung node or a partition: connections stay open and
# nothing answers), which only the pings can notice. The defaults of --peer-ping-interval (5s)
# and --peer-ping-timeout (5s) are used: two unanswered pings in a row disconnect a peer. The
# targets are the issue's (isolated within 15 s of a kill, 30 s of a hang).
#
#   bench/health.sh        (as root, to install dnsmasq-base)
#   bench/health.sh --quick
#
# Quick mode (CI): 3 nodes, --peer-ping-interval 1s and --peer-ping-timeout 1s, the debug build
# (or BENCH_BIN_DIR's speil, or SPEIL_BIN). It asserts that every node becomes `connected` and
# that the first one says `isolated` once its peers are killed and once they are stopped (within
# a generous 60 s: a bound on "never", not a timing).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
QUICK=false
[[ ${1:-} == --quick ]] && QUICK=true

need dnsmasq dnsmasq-base
need curl curl
need python3 python3

SERVER_CPU=()
NET=127.78.0
NAME=speil-health.test
PING_FLAGS=()
if $QUICK; then
    NODES=${NODES:-3}
    PING_FLAGS=(--peer-ping-interval 1s --peer-ping-timeout 1s)
else
    NODES=${NODES:-5}
fi

bins "$QUICK" speil
SPEIL=${SPEIL_BIN:-$BIN/speil}

: >"$SCRATCH/hosts"
for i in $(seq 1 "$NODES"); do echo "$NET.$i $NAME" >>"$SCRATCH/hosts"; done
start "$SCRATCH/dnsmasq.log" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv \
    --no-hosts --bind-interfaces --user=root --pid-file= --local-ttl=0 --log-facility=- \
    --local=/test/ --listen-address="$NET.253" --port=53 --addn-hosts="$SCRATCH/hosts"
sleep 0.3

# wait_state N STATE LIMIT: seconds until node N's state is STATE, polled every 20 ms.
wait_state() {
    python3 - "$NET.$1" "$2" "$3" <<'PY'
import json, sys, time, urllib.request
host, want, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
start = time.time()
while time.time() - start < limit:
    try:
        with urllib.request.urlopen(f"http://{host}:9090/status", timeout=1) as r:
            if json.load(r)["bootstrap"]["state"] == want:
                print(f"{time.time() - start:.2f}")
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.02)
sys.exit(f"bench: {host} not {want} after {limit} s")
PY
}

# measure SIGNAL: a fresh cluster, SIGNAL to all nodes but the first; seconds to `isolated` in
# $RESULT. (Not run in a subshell, so the exit trap knows every pid it started.)
measure() {
    local -a pids=()
    for i in $(seq 1 "$NODES"); do
        start "$SCRATCH/$1-node-$i.log" "$SPEIL" demo --no-sample --dir "$SCRATCH/$1-$i" \
            --registry-addr "$NET.$i:5000" --metrics-addr "$NET.$i:9090" \
            --router-addr "$NET.$i:5001" --bootstrap-kind dns --dns-bootstrap-domain "$NAME" \
            --dns-bootstrap-nameserver "$NET.253:53" "${PING_FLAGS[@]}" --log-level warn
        pids[i]=$STARTED
    done
    for i in $(seq 1 "$NODES"); do wait_state "$i" connected 30 >/dev/null; done
    sleep 2
    for i in $(seq 2 "$NODES"); do kill -s "$1" "${pids[i]}"; done
    RESULT=$(wait_state 1 isolated 60)
    for i in $(seq 1 "$NODES"); do
        kill -s CONT "${pids[i]}" 2>/dev/null || true
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
}

echo "==> $NODES nodes; all but one killed"
measure KILL
KILLED=$RESULT
echo "==> $NODES nodes; all but one stopped"
measure STOP
STOPPED=$RESULT

echo
printf '%-52s %10s %10s %s\n' "seconds from the peers' end to isolated" "speil" "target" "before"
printf '%-52s %10s %10s %s\n' "peers killed (SIGKILL)" "$KILLED" "<= 15" "never (stayed connected)"
printf '%-52s %10s %10s %s\n' "peers stopped (SIGSTOP)" "$STOPPED" "<= 30" "never (stayed connected)"
if $QUICK; then
    echo "quick: all $NODES nodes became connected, and the first said isolated once its peers were killed and once they were stopped (pings ${PING_FLAGS[*]})"
fi
