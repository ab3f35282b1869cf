#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The cluster benchmark: Spegel's pull benchmark on one machine. NODES nodes, each in its own
# network namespace with its own containerd and Speil, on a bridge; an upstream registry behind
# a slower (WAN) link; every image pulled through the CRI (PullImage, which unpacks) on every node,
# one node after another (a rolling update) and all at once (creation), without Speil and with it,
# and one node after another from a registry on the node network (the physical reference: what a
# pull from a peer can at best approach). Prints pull times and the bytes the upstream served.
#
#   bench/cluster/run.sh            (as root)  the full run, defaults below
#   bench/cluster/run.sh --quick    3 nodes, one small image; asserts, never times (CI runs it)
#   NODES=5 IMAGES="100MiB:1 100MiB:4" WAN_RATE=500mbit bench/cluster/run.sh
#
# Options (environment):
#   NODES=10               nodes (at least 3)
#   IMAGES="10MiB:1 10MiB:4 100MiB:1 100MiB:4 1GiB:1 1GiB:4"   TOTAL:LAYERS of each test image
#   NODE_RATE=2gbit        every node's link to the bridge, each direction (tc tbf)
#   WAN_RATE=500mbit       the upstream registry's link, each direction
#   CONTAINERD=1.6         1.6 (Debian's) or 2 (containerd 2.x from scripts/containerd2.sh)
#   SPEIL_BIN=...          another speil binary
#   LOGS_DIR=DIR           keep every log, host file and per-node result there (all else is removed)
#   NODE_LOG_LEVEL=info    the nodes' --log-level, e.g. info,registry::mirror=debug
# Latency is not shaped (no netem in this kernel); see net.sh.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
HERE="$ROOT/bench/cluster"
# shellcheck source=net.sh
source "$HERE/net.sh"
# shellcheck source=node.sh
source "$HERE/node.sh"
# shellcheck source=images.sh
source "$HERE/images.sh"
# shellcheck source=scenarios.sh
source "$HERE/scenarios.sh"
# shellcheck source=report.sh
source "$HERE/report.sh"

QUICK=false
[[ ${1:-} == --quick ]] && QUICK=true
if $QUICK; then
    NODES=${NODES:-3}
    IMAGES=${IMAGES:-"4MiB:2"}
    NODE_RATE=${NODE_RATE:-1gbit}
    WAN_RATE=${WAN_RATE:-100mbit}
else
    NODES=${NODES:-10}
    IMAGES=${IMAGES:-"10MiB:1 10MiB:4 100MiB:1 100MiB:4 1GiB:1 1GiB:4"}
    NODE_RATE=${NODE_RATE:-2gbit}
    WAN_RATE=${WAN_RATE:-500mbit}
fi
CONTAINERD=${CONTAINERD:-1.6}
((NODES >= 3 && NODES <= 250)) || { echo "bench: NODES must be 3 to 250" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "bench: run as root (network namespaces)" >&2; exit 1; }

UPSTREAM=198.18.0.2:5000
REFERENCE=198.18.0.3:5000
DNS_IP=198.18.0.4

need ip iproute2
need tc iproute2
need containerd containerd
need runc runc
need skopeo skopeo
need docker-registry docker-registry
need dnsmasq dnsmasq-base
need curl curl
need jq jq

# On any exit: every process this run started, by pid (replacing lib.sh's trap, whose cleanup it
# ends with), then the namespaces, then the scratch directory. INT and TERM exit through it too.
# shellcheck disable=SC2317  # called by the trap
cluster_cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    net_down
    if [[ -n ${LOGS_DIR:-} ]]; then
        mkdir -p "$LOGS_DIR"
        (cd "$SCRATCH" && find . \( -name '*.log' -o -name '*.toml' -o -path './results/*' \) \
            -not -path '*/root/*' -exec cp --parents {} "$LOGS_DIR" \;) 2>/dev/null || true
    fi
    cleanup
    exit "$status"
}
trap cluster_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Quick mode takes the debug build CI has just made; the full run measures the release build.
bins "$QUICK" speil speil-test-support
SPEIL=${SPEIL_BIN:-$BIN/speil}
GEN=$BIN/gen-layout
CRI_PULL=$BIN/cri-pull
if [[ $CONTAINERD == 2 ]]; then
    bin=${SPEIL_CONTAINERD2_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/speil-containerd/v2.4.2/bin}
    CONTAINERD_BIN=$bin/containerd CTR_BIN=$bin/ctr
else
    CONTAINERD_BIN=$(command -v containerd) CTR_BIN=$(command -v ctr)
fi
SERVER_CPU=()  # everything shares both cores, as nodes of a cluster would not

echo "==> network: $NODES nodes at $NODE_RATE, upstream at $WAN_RATE (198.18.0.0/15, tc tbf)"
net_up
endpoint up 198.18.0.2 "$WAN_RATE"
endpoint ref 198.18.0.3 "$NODE_RATE"
endpoint dns "$DNS_IP" "$NODE_RATE"
for n in $(seq 1 "$NODES"); do endpoint "n$n" "$(node_ip "$n")" "$NODE_RATE"; done

echo "==> upstream and reference registries (docker-registry), dnsmasq"
registry_start up "$UPSTREAM"
UPSTREAM_LOG=$LOG
registry_start ref "$REFERENCE"
dns_start

echo "==> images: $IMAGES"
# shellcheck disable=SC2086
make_images $IMAGES

for n in $(seq 1 "$NODES"); do node_init "$n"; done
for i in "${!IMG_NAME[@]}"; do
    echo "==> ${IMG_NAME[i]}"
    run_image "$i"
done

report
$QUICK && assert_quick
exit 0
