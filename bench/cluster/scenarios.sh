# shellcheck shell=bash
# The servers outside the nodes and the pull scenarios, sourced by run.sh. Each pass starts from
# cold nodes (reset_nodes) and writes its figures under $RESULTS: one line per node with the
# PullImage milliseconds, the wall time of a creation, the bytes the upstream served.

RESULTS="$SCRATCH/results"
mkdir -p "$RESULTS"
: >"$RESULTS/unfindable"
FAILED_PULLS=0

# registry_start ENDPOINT ADDR: Debian's docker-registry (the CNCF distribution registry) in
# ENDPOINT's namespace, filesystem storage, with its access log (one line per request, with the
# bytes sent), which is how upstream bytes are counted. Its log file is left in $LOG.
registry_start() {
    local name=$1 addr=$2 dir="$SCRATCH/registry-$1"
    mkdir -p "$dir/storage"
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: $addr
YAML
    LOG="$dir/registry.log"
    start "$LOG" ip netns exec "$(ns_of "$name")" docker-registry serve "$dir/config.yml"
    for _ in $(seq 1 100); do
        ip netns exec "$(ns_of "$name")" curl -s -o /dev/null "http://$addr/v2/" && return
        sleep 0.1
    done
    echo "bench: the registry at $addr did not start: $(tail -5 "$LOG")" >&2
    exit 1
}

# dnsmasq answering the chart's headless Service name with every node's address, as the
# cluster's DNS does for a Service with publishNotReadyAddresses.
dns_start() {
    local n
    : >"$SCRATCH/hosts"
    for n in $(seq 1 "$NODES"); do echo "$(node_ip "$n") $BOOTSTRAP_NAME" >>"$SCRATCH/hosts"; done
    start "$SCRATCH/dnsmasq.log" ip netns exec "$(ns_of dns)" dnsmasq --keep-in-foreground \
        --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces --user=root --pid-file= \
        --local-ttl=0 --log-facility=- --listen-address="$DNS_IP" --port=53 \
        --addn-hosts="$SCRATCH/hosts"
    sleep 0.3
}

# Bytes of GET responses the upstream logged after line FROM of its access log.
served_since() { # served_since FROM
    tail -n +"$(($1 + 1))" "$UPSTREAM_LOG" | awk '
        match($0, /"GET [^"]*" [0-9]+ [0-9]+/) {
            split(substr($0, RSTART, RLENGTH), f, " "); s += f[5]
        }
        END { printf "%.0f\n", s }'
}

# What the upstream's link sent since COUNT (tx_bytes), headers included: the access log's
# figure seen from the wire.
wire_since() { # wire_since COUNT
    awk -v b=$(($(tx_bytes up) - $1)) 'BEGIN { printf "upstream link sent %.1f MB", b / 1e6 }'
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The machine's busy and total CPU ticks so far (/proc/stat), and the busy share since a sample:
# a pass near 100% was limited by the two cores, not by the shaped links.
cpu_sample() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
cpu_busy_since() { # cpu_busy_since "BUSY TOTAL"
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$1"
    read -r b1 t1 < <(cpu_sample)
    awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f%%", (t > 0 ? 100 * b / t : 0) }'
}

# check_pull OUT I: the pull's line is there and names image I's config digest (containerd
# verified every blob by digest; the image id it returns is the config's).
check_pull() {
    local id
    id=$(awk '{print $2}' "$1" 2>/dev/null)
    if [[ $id != "${IMG_CONFIG[$2]}" ]]; then
        echo "    FAILED: $(cat "$1.err" 2>/dev/null) (got id '${id:-none}', want ${IMG_CONFIG[$2]})" >&2
        FAILED_PULLS=$((FAILED_PULLS + 1))
        return 1
    fi
}

# wait_findable I N: until the DHT gives a provider for image I's tag and every layer, asked
# from a node that is neither N nor the next to pull (so that node's lookup cache stays cold).
# In a real rolling update the next pod starts seconds later; this is that pause, not timed.
wait_findable() {
    local i=$1 n=$2 asker key
    asker=$(((n + 1) % NODES + 1))
    for key in ${IMG_KEYS[i]}; do
        for _ in $(seq 1 300); do
            [[ $(admin_get "$asker" "/debug/lookup?key=$key" | jq '.providers | length' 2>/dev/null) -gt 0 ]] \
                && continue 2
            sleep 0.1
        done
        echo "    node $asker found no provider of $key 30 s after node $n pulled it" >&2
        echo "$key" >>"$RESULTS/unfindable"
        return 0
    done
}

# Bytes all Speil nodes streamed to their containerd from peers, peers that failed a request
# (each quarantined), and the local misses with their mean time to a provider or to the 404,
# from the nodes' /metrics: how much of a Speil pass the mirror carried, and what it cost.
peer_counters() {
    local n
    for n in $(seq 1 "$NODES"); do admin_get "$n" /metrics; done | awk '
        /^speil_mirror_bytes_total\{.*source="peer"/ { b += $NF }
        /^speil_mirror_peer_failures_total/ { f += $NF }
        /^speil_resolve_duration_seconds_sum/ { rs += $NF }
        /^speil_resolve_duration_seconds_count/ { rc += $NF }
        END { printf "%.0f %.0f %.0f %.1f\n", b, f, rc, (rc > 0 ? rs / rc * 1000 : 0) }'
}

# The per-pass line's end for a Speil pass; empty for the others.
peer_note() { # peer_note I PASS
    [[ $2 == speil-* ]] || return 0
    local bytes failures resolves resolve_ms
    read -r bytes failures resolves resolve_ms < <(peer_counters)
    echo "$bytes" >"$RESULTS/$1-$2.peer"
    awk -v b="$bytes" -v f="$failures" -v r="$resolves" -v ms="$resolve_ms" \
        'BEGIN { printf ", from peers %.1f MB, peer failures %d, %d local misses resolved in %.1f ms on average", b / 1e6, f, r, ms }'
}

# rolling I PASS REGISTRY: one node after another pulls image I from REGISTRY.
rolling() {
    local i=$1 pass=$2 registry=$3 n from out cpu wire
    from=$(wc -l <"$UPSTREAM_LOG")
    cpu=$(cpu_sample) wire=$(tx_bytes up)
    : >"$RESULTS/$i-$pass"
    for n in $(seq 1 "$NODES"); do
        out="$RESULTS/$i-$pass-n$n"
        if "$CRI_PULL" "$(node_sock "$n")" "$registry/bench/${IMG_NAME[i]}:1" >"$out" 2>"$out.err" \
            && check_pull "$out" "$i"; then
            awk '{print $1}' "$out" >>"$RESULTS/$i-$pass"
        else
            check_pull "$out" "$i" || true
        fi
        [[ $pass == speil-rolling ]] && ((n < NODES)) && wait_findable "$i" "$n"
    done
    served_since "$from" >"$RESULTS/$i-$pass.bytes"
    echo "    $pass (ms): $(tr '\n' ' ' <"$RESULTS/$i-$pass")(CPU busy $(cpu_busy_since "$cpu"), $(wire_since "$wire")$(peer_note "$i" "$pass"))"
}

# creation I PASS: every node pulls image I from the upstream at the same moment.
creation() {
    local i=$1 pass=$2 n from t0 out cpu wire
    local -a pids
    from=$(wc -l <"$UPSTREAM_LOG")
    cpu=$(cpu_sample) wire=$(tx_bytes up)
    : >"$RESULTS/$i-$pass"
    t0=$(now_ms)
    for n in $(seq 1 "$NODES"); do
        out="$RESULTS/$i-$pass-n$n"
        "$CRI_PULL" "$(node_sock "$n")" "$UPSTREAM/bench/${IMG_NAME[i]}:1" >"$out" 2>"$out.err" &
        pids[n]=$!
    done
    for n in $(seq 1 "$NODES"); do
        out="$RESULTS/$i-$pass-n$n"
        wait "${pids[n]}" || true
        check_pull "$out" "$i" && awk '{print $1}' "$out" >>"$RESULTS/$i-$pass"
    done
    echo $(($(now_ms) - t0)) >"$RESULTS/$i-$pass.wall"
    served_since "$from" >"$RESULTS/$i-$pass.bytes"
    echo "    $pass (ms): $(tr '\n' ' ' <"$RESULTS/$i-$pass") all done after $(cat "$RESULTS/$i-$pass.wall") (CPU busy $(cpu_busy_since "$cpu"), $(wire_since "$wire")$(peer_note "$i" "$pass"))"
}

# Every pass of image I, each from cold nodes: without Speil (upstream, then the reference
# registry on the node network), then with Speil.
run_image() { # run_image I
    local i=$1
    reset_nodes
    rolling "$i" base-rolling "$UPSTREAM"
    reset_nodes
    rolling "$i" reference "$REFERENCE"
    reset_nodes
    creation "$i" base-creation
    reset_nodes speil
    rolling "$i" speil-rolling "$UPSTREAM"
    reset_nodes speil
    creation "$i" speil-creation
}
