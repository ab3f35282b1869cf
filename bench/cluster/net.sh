# shellcheck shell=bash
# The cluster's network, sourced by run.sh: a bridge in a namespace of its own, and one namespace
# per endpoint (node, upstream registry, reference registry, DNS) joined to it by a veth pair
# whose two ends are shaped with tc tbf (egress of each end, so both directions are limited).
#
# Addresses come from 198.18.0.0/15, the range set aside for benchmarks (RFC 2544), and nothing
# else exists in these namespaces: no default route, IPv6 off (no link-local addresses), and the
# root namespace is not attached, so no packet of the benchmark can reach any other network.
#
# Latency is left out: tc's `netem` is not in this kernel, and a user-space delaying proxy would
# put its own CPU cost on the path being measured. Links differ by bandwidth only.

# Every namespace of this run carries its pid, so two runs (CI and a developer's) never collide.
NS_PREFIX="spc$$"
BRIDGE_NS="$NS_PREFIX-br"
NAMESPACES=()

# The namespace of endpoint NAME.
ns_of() { echo "$NS_PREFIX-$1"; }

# tbf's bucket: 10 ms of traffic at RATE, at least 64 KiB so a GSO super-packet always fits.
tbf_burst() { # tbf_burst RATE (e.g. 1gbit, 200mbit)
    local r=$1 bits
    case $r in
        *gbit) bits=$(( ${r%gbit} * 1000000000 )) ;;
        *mbit) bits=$(( ${r%mbit} * 1000000 )) ;;
        *kbit) bits=$(( ${r%kbit} * 1000 )) ;;
        *) echo "bench: rate $r: give it as Nkbit, Nmbit or Ngbit" >&2; exit 2 ;;
    esac
    local b=$(( bits / 8 / 100 ))
    (( b < 65536 )) && b=65536
    echo "$b"
}

net_up() { # the bridge namespace and its bridge
    ip netns add "$BRIDGE_NS"
    NAMESPACES+=("$BRIDGE_NS")
    ip netns exec "$BRIDGE_NS" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$BRIDGE_NS" link add br0 type bridge
    ip -n "$BRIDGE_NS" link set br0 up
}

# endpoint NAME IP RATE: a namespace with eth0 at IP/16 on the bridge, both directions at RATE.
endpoint() {
    local name=$1 ip=$2 rate=$3 ns
    ns=$(ns_of "$name")
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$BRIDGE_NS" link add "v-$name" type veth peer name eth0 netns "$ns"
    ip -n "$BRIDGE_NS" link set "v-$name" master br0 up
    ip -n "$ns" addr add "$ip/16" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    local burst
    burst=$(tbf_burst "$rate")
    # Out of the endpoint (its upload) and out of the bridge towards it (its download).
    tc -n "$ns" qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 100ms
    tc -n "$BRIDGE_NS" qdisc add dev "v-$name" root tbf rate "$rate" burst "$burst" latency 100ms
}

# Bytes sent by endpoint NAME (its eth0's counter: payload plus TCP/IP and Ethernet headers).
tx_bytes() { ip netns exec "$(ns_of "$1")" cat /sys/class/net/eth0/statistics/tx_bytes; }

# Removes every namespace this run made; their veths and the bridge go with them.
net_down() {
    local ns
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    NAMESPACES=()
}
